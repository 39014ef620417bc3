package httpapi

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

const (
	u1 = "3f0e5a1c-6d2b-4c6e-9a51-2b7d8e4f1a90"
	u2 = "0F8FAD5B-D9CB-469F-A165-70867728950E"
)

// fullBind is the vote body through bind alone: the path every body took
// before parseVoteBody.
func fullBind(body []byte) (voteRequest, error) {
	gin.SetMode(gin.ReleaseMode)
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest(http.MethodPost, "/", io.NopCloser(bytes.NewReader(body)))
	var req voteRequest
	err := bind(c, &req)
	return req, err
}

// agree asserts that parseVoteBody, where it takes a body, reads it as
// bind does, and reports whether it took it.
func agree(t *testing.T, body []byte) bool {
	t.Helper()
	var fast voteRequest
	if !parseVoteBody(body, &fast) {
		return false
	}
	full, err := fullBind(body)
	if err != nil {
		t.Fatalf("fast path took %q, bind refuses it: %v", body, err)
	}
	sameOne := (fast.OptionID == nil) == (full.OptionID == nil) && (fast.OptionID == nil || *fast.OptionID == *full.OptionID)
	sameMany := (fast.OptionIDs == nil) == (full.OptionIDs == nil) && slices.Equal(fast.OptionIDs, full.OptionIDs)
	if !sameOne || !sameMany {
		t.Fatalf("%q: fast path %+v, bind %+v", body, fast, full)
	}
	return true
}

func TestParseVoteBodyAgreesWithBind(t *testing.T) {
	taken := []string{
		`{"option_id":"` + u1 + `"}`,
		`{"option_id":"` + u2 + `"}`,
		" \t\r\n{ \"option_id\" :\n\"" + u1 + "\" } \n",
		`{"option_ids":["` + u1 + `"]}`,
		`{"option_ids":["` + u1 + `","` + u2 + `"]}`,
		`{ "option_ids" : [ "` + u1 + `" , "` + u1 + `" ] }`,
		`{"option_id":"` + u1 + `","option_ids":["` + u2 + `"]}`, // both: options() refuses it, as before
		`{"option_ids":["` + u1 + `"],"option_id":"` + u2 + `"}`,
	}
	for _, b := range taken {
		if !agree(t, []byte(b)) {
			t.Errorf("fast path did not take %q", b)
		}
	}
	// Everything unusual is left to bind: case variants and duplicates
	// of keys, other keys, escapes, other UUID spellings, nulls, empty
	// arrays, nesting, trailing data, bad UTF-8, not an object.
	left := []string{
		``, ` `, `null`, `[]`, `"x"`, `{}`, `{ }`,
		`{"Option_ID":"` + u1 + `"}`, `{"OPTION_IDS":["` + u1 + `"]}`, `{"option_id":"` + u1 + `","option_id":"` + u1 + `"}`,
		`{"option_id":"` + u1 + `","Option_Id":"` + u2 + `"}`, `{"option_ids":["` + u1 + `"],"option_ids":["` + u1 + `"]}`,
		`{"option_id":"` + u1 + `","x":1}`, `{"x":1,"option_id":"` + u1 + `"}`, `{"option_\u0069d":"` + u1 + `"}`,
		`{"option_id":"\u0033f0e5a1c-6d2b-4c6e-9a51-2b7d8e4f1a90"}`, `{"option_id":"` + strings.ReplaceAll(u1, "-", "") + `"}`,
		`{"option_id":"{` + u1 + `}"}`, `{"option_id":"` + u1[:35] + `"}`, `{"option_id":"` + u1 + `0"}`, `{"option_id":"g` + u1[1:] + `"}`,
		`{"option_id":"` + u1[:8] + `_` + u1[9:] + `"}`, `{"option_id":null}`, `{"option_ids":null}`, `{"option_ids":[]}`,
		`{"option_ids":[null]}`, `{"option_ids":["` + u1 + `",]}`, `{"option_ids":[["` + u1 + `"]]}`, `{"option_id":["` + u1 + `"]}`,
		`{"option_ids":"` + u1 + `"}`, `{"option_id":"` + u1 + `"}}`, `{"option_id":"` + u1 + `"}{}`, `{"option_id":"` + u1 + `"} x`,
		`{"option_id":"` + u1 + `",}`, `{"option_id":"` + u1 + `"`, `{"option_id" "` + u1 + `"}`, `{"option_id":"` + u1 + `"}` + "\u00a0",
		"\ufeff{\"option_id\":\"" + u1 + "\"}", "{\"option_id\xff\":\"" + u1 + "\"}", "{\"\xffoption_id\":\"" + u1 + "\"}",
		`{"option_id":"` + u1 + `"` + "\x00}", `{"option_id":1}`, `{"option_id":true}`, `{"option_id":{}}`,
		`{"option_ids":["` + u1 + `"` + strings.Repeat(`,"`+u1+`"`, 3) + `,1]}`,
	}
	for _, b := range left {
		if agree(t, []byte(b)) {
			t.Errorf("fast path took %q", b)
		}
	}
}

// FuzzParseVoteBody: whatever the fast path takes, bind takes too and
// reads the same request.
func FuzzParseVoteBody(f *testing.F) {
	f.Add([]byte(`{"option_id":"` + u1 + `"}`))
	f.Add([]byte(`{"option_ids":["` + u1 + `","` + u2 + `"]}`))
	f.Add([]byte(`{"option_id":"` + u1 + `","option_ids":["` + u2 + `"]}`))
	f.Add([]byte(` {"option_ids" : [ "` + u2 + `" ] } `))
	f.Fuzz(func(t *testing.T, body []byte) { agree(t, body) })
}
