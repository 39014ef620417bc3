package poll

import (
	"errors"
	"strings"
	"testing"

	"github.com/tally-vote/tally/pkg/apperr"
)

func TestCheckEmbedOrigins(t *testing.T) {
	many := make([]string, MaxEmbedOrigins+1)
	for i := range many {
		many[i] = "https://site" + strings.Repeat("x", i) + ".example"
	}
	tests := []struct {
		name    string
		origins []string
		ok      bool
	}{
		{"none", nil, true},
		{"empty list", []string{}, true},
		{"https", []string{"https://blog.example.com"}, true},
		{"http with port", []string{"http://localhost:8080"}, true},
		{"ipv4", []string{"http://127.0.0.2:41234"}, true},
		{"upper-case host", []string{"https://Blog.Example.COM"}, true},
		{"upper-case scheme", []string{"HTTPS://blog.example.com"}, false},
		{"ten", many[:MaxEmbedOrigins], true},
		{"eleven", many, false},
		{"trailing slash", []string{"https://blog.example.com/"}, false},
		{"path", []string{"https://blog.example.com/posts"}, false},
		{"query", []string{"https://blog.example.com?x=1"}, false},
		{"fragment", []string{"https://blog.example.com#x"}, false},
		{"user info", []string{"https://me@blog.example.com"}, false},
		{"wildcard host", []string{"https://*.example.com"}, false},
		{"star", []string{"*"}, false},
		{"keyword", []string{"'self'"}, false},
		{"no scheme", []string{"blog.example.com"}, false},
		{"other scheme", []string{"ftp://blog.example.com"}, false},
		{"data", []string{"data:"}, false},
		{"ipv6", []string{"http://[::1]:8080"}, false},
		{"port zero", []string{"https://blog.example.com:0"}, false},
		{"port too big", []string{"https://blog.example.com:65536"}, false},
		{"port max", []string{"https://blog.example.com:65535"}, true},
		{"empty port", []string{"https://blog.example.com:"}, false},
		{"header injection", []string{"https://a.example; script-src *"}, false},
		{"new line", []string{"https://a.example\r\nX-Evil: 1"}, false},
		{"space", []string{"https://a.example https://b.example"}, false},
		{"label ends with hyphen", []string{"https://a-.example"}, false},
		{"label too long", []string{"https://" + strings.Repeat("a", 64) + ".example"}, false},
		{"too long", []string{"https://" + strings.Repeat("a.", 150) + "example"}, false},
		{"duplicate", []string{"https://a.example", "https://b.example", "https://A.example"}, false},
		{"empty string", []string{""}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkEmbedOrigins(tc.origins)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ve *apperr.ValidationError
			if !errors.As(err, &ve) || ve.Field != "settings.embed_origins" {
				t.Fatalf("err %v, want a validation error on settings.embed_origins", err)
			}
		})
	}
}

// TestEmbedOriginsPatch: the list is replaced whole, an empty list clears
// it, an absent one keeps it, and Patch.Validate refuses a bad list.
func TestEmbedOriginsPatch(t *testing.T) {
	base := Settings{EmbedOrigins: []string{"https://a.example"}}
	list := []string{"https://b.example", "http://localhost:3000"}
	if got := (SettingsPatch{}).Apply(base).EmbedOrigins; len(got) != 1 || got[0] != "https://a.example" {
		t.Errorf("absent: %v", got)
	}
	got := SettingsPatch{EmbedOrigins: &list}.Apply(base).EmbedOrigins
	if len(got) != 2 || got[1] != "http://localhost:3000" {
		t.Errorf("replace: %v", got)
	}
	list[0] = "changed"
	if got[0] != "https://b.example" {
		t.Error("Apply kept the request's slice")
	}
	empty := []string{}
	if got := (SettingsPatch{EmbedOrigins: &empty}).Apply(base).EmbedOrigins; got != nil {
		t.Errorf("clear: %v", got)
	}
	p := &Poll{Options: []Option{{}, {}}}
	bad := []string{"https://*.example"}
	var ve *apperr.ValidationError
	if err := (Patch{Settings: &SettingsPatch{EmbedOrigins: &bad}}).Validate(p, p.StartTime); !errors.As(err, &ve) || ve.Field != "settings.embed_origins" {
		t.Errorf("patch with a wildcard: %v", err)
	}
}
