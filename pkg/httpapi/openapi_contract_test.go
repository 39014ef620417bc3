package httpapi

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"

	"github.com/tally-vote/tally/pkg/auth"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/vote"
)

// loadContract parses openapi.yaml with a maintained OpenAPI library and
// validates it as an OpenAPI 3 document.
func loadContract(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openAPIYAML)
	if err != nil {
		t.Fatalf("load openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI 3 document: %v", err)
	}
	return doc
}

const errorSchemaRef = "#/components/schemas/Error"

// noDependency lists the operations that reach no Cassandra, Redis or Kafka
// call that can fail (the rate limiter fails open), so they never answer 503
// UNAVAILABLE. /readyz has its own 503.
var noDependency = map[string]bool{
	"GET /healthz":                        true,
	"GET /readyz":                         true,
	"GET /metrics":                        true,
	"GET /v1/openapi.json":                true,
	"GET /.well-known/tally-receipt-keys": true,
	"POST /v1/auth/anonymous":             true,
}

// rateLimited lists the operations behind a rate-limit middleware (see
// NewRouter).
var rateLimited = map[string]bool{
	"POST /v1/auth/register":         true,
	"POST /v1/auth/login":            true,
	"POST /v1/auth/anonymous":        true,
	"POST /v1/polls":                 true,
	"POST /v1/polls/{poll_id}/votes": true,
	"GET /v1/polls/{poll_id}/flags":  true,
	"GET /v1/polls/{poll_id}/export": true,
}

// TestOpenAPIStatuses checks that every operation documents the statuses
// its middleware and inputs make possible, and that every error response is
// the envelope.
func TestOpenAPIStatuses(t *testing.T) {
	doc := loadContract(t)
	for _, path := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(path)
		for method, op := range item.Operations() {
			name := method + " " + path
			has := func(status string) bool { return op.Responses.Value(status) != nil }
			params := append(openapi3.Parameters{}, item.Parameters...)
			params = append(params, op.Parameters...)
			if (op.RequestBody != nil || len(params) > 0) && path != "/v1/auth/anonymous" && !has("400") {
				t.Errorf("%s takes input (body or parameters) but documents no 400", name)
			}
			if op.RequestBody != nil && !has("413") {
				t.Errorf("%s takes a body but documents no 413", name)
			}
			if !noDependency[name] && !has("503") {
				t.Errorf("%s uses a dependency but documents no 503", name)
			}
			if rateLimited[name] {
				r := op.Responses.Value("429")
				if r == nil || r.Value.Headers["Retry-After"] == nil {
					t.Errorf("%s is rate-limited but documents no 429 with Retry-After", name)
				}
			}
			if usesBearer(op) && !has("401") {
				t.Errorf("%s accepts a bearer token but documents no 401", name)
			}
			if path == "/readyz" {
				continue // its 503 is the readiness document, not an error
			}
			for status, ref := range op.Responses.Map() {
				if status < "400" || status == "default" {
					continue
				}
				mt := ref.Value.Content.Get("application/json")
				if mt == nil || mt.Schema == nil || mt.Schema.Ref != errorSchemaRef {
					t.Errorf("%s %s does not reference %s", name, status, errorSchemaRef)
				}
			}
		}
	}
}

func usesBearer(op *openapi3.Operation) bool {
	if op.Security == nil {
		return false
	}
	for _, req := range *op.Security {
		if _, ok := req["bearer"]; ok {
			return true
		}
	}
	return false
}

// TestOpenAPIConstraints pins the limits the server enforces (pkg/poll,
// pkg/auth, pkg/vote) into the document, so neither can drift silently.
func TestOpenAPIConstraints(t *testing.T) {
	doc := loadContract(t)
	schema := func(name string) *openapi3.Schema {
		t.Helper()
		ref := doc.Components.Schemas[name]
		if ref == nil {
			t.Fatalf("schema %s missing", name)
		}
		return ref.Value
	}
	prop := func(s *openapi3.Schema, name string) *openapi3.Schema {
		t.Helper()
		p := s.Properties[name]
		if p == nil {
			t.Fatalf("property %s missing", name)
		}
		return p.Value
	}
	eqU := func(what string, got *uint64, want uint64) {
		t.Helper()
		if got == nil {
			t.Errorf("%s is not set, want %d", what, want)
		} else if *got != want {
			t.Errorf("%s = %d, want %d", what, *got, want)
		}
	}
	eqF := func(what string, got *float64, want float64) {
		t.Helper()
		if got == nil {
			t.Errorf("%s is not set, want %v", what, want)
		} else if *got != want {
			t.Errorf("%s = %v, want %v", what, *got, want)
		}
	}
	eqS := func(what, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %q, want %q", what, got, want)
		}
	}
	required := func(s *openapi3.Schema, want ...string) {
		t.Helper()
		got := append([]string(nil), s.Required...)
		sort.Strings(got)
		sort.Strings(want)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("required = %v, want %v", got, want)
		}
	}

	create := schema("PollCreate")
	required(create, "title", "options")
	title := prop(create, "title")
	eqU("title.minLength", &title.MinLength, 1)
	eqU("title.maxLength", title.MaxLength, poll.MaxTitle)
	eqU("description.maxLength", prop(create, "description").MaxLength, poll.MaxDescription)
	opts := prop(create, "options")
	eqU("options.minItems", &opts.MinItems, poll.MinOptions)
	eqU("options.maxItems", opts.MaxItems, poll.MaxOptions)
	if !opts.UniqueItems {
		t.Error("options.uniqueItems is not set")
	}
	opt := opts.Items.Value
	required(opt, "text")
	text := prop(opt, "text")
	eqU("option text minLength", &text.MinLength, 1)
	eqU("option text maxLength", text.MaxLength, poll.MaxOptionText)
	order := prop(opt, "display_order")
	eqF("display_order.minimum", order.Min, 0)
	eqF("display_order.maximum", order.Max, 2147483647) // the CQL int column
	eqS("start_time.format", prop(create, "start_time").Format, "date-time")
	end := prop(create, "end_time")
	eqS("end_time.format", end.Format, "date-time")
	if !strings.Contains(end.Description, "after start_time") {
		t.Error("end_time does not describe the after-start_time rule")
	}
	// A PATCH may not move end_time to now or before (pkg/poll
	// Patch.Validate); closing is the way to end a poll now.
	patchEnd := prop(schema("PollPatch"), "end_time")
	eqS("PollPatch end_time.format", patchEnd.Format, "date-time")
	if !strings.Contains(patchEnd.Description, "after the poll's start_time and in the future") ||
		!strings.Contains(patchEnd.Description, `{"status": "closed"}`) {
		t.Error("PollPatch end_time does not describe the in-the-future rule and the close to use instead")
	}
	if r := doc.Paths.Value("/v1/polls/{poll_id}").Patch.Responses.Value("400"); r == nil ||
		!strings.Contains(*r.Value.Description, "end_time at or before now") {
		t.Error("PATCH /v1/polls/{poll_id} does not document the 400 for an end_time at or before now")
	}
	maxVotes := prop(prop(create, "settings"), "max_votes_per_user")
	eqF("max_votes_per_user.minimum", maxVotes.Min, 0)
	eqF("max_votes_per_user.maximum", maxVotes.Max, poll.MaxOptions)
	if create.Example == nil {
		t.Error("PollCreate has no example")
	}

	v := schema("VoteRequest")
	if len(v.OneOf) != 3 {
		t.Fatalf("VoteRequest.oneOf has %d branches, want 3", len(v.OneOf))
	}
	required(v.OneOf[0].Value, "option_id")
	required(v.OneOf[1].Value, "option_ids")
	required(v.OneOf[2].Value, "scores")
	entry := prop(v.OneOf[2].Value, "scores").Items.Value
	required(entry, "option_id", "score")
	eqF("score.minimum", prop(entry, "score").Min, 0)
	eqF("score.maximum", prop(entry, "score").Max, 5)
	ids := prop(v.OneOf[1].Value, "option_ids")
	eqU("option_ids.minItems", &ids.MinItems, 1)
	if !ids.UniqueItems || ids.Items.Value.Format != "uuid" {
		t.Error("option_ids must be unique UUIDs")
	}
	eqS("option_id.format", prop(v.OneOf[0].Value, "option_id").Format, "uuid")

	reg := schema("RegisterRequest")
	required(reg, "email", "username", "password")
	eqS("email.format", prop(reg, "email").Format, "email")
	eqS("username.pattern", prop(reg, "username").Pattern, "^[a-z0-9_]{3,32}$")
	pw := prop(reg, "password")
	eqU("password.minLength", &pw.MinLength, 8)
	eqU("password.maxLength", pw.MaxLength, 72)
	eqU("login.minLength", &prop(schema("LoginRequest"), "login").MinLength, 1)

	for _, name := range []string{"PollCreate", "PollPatch", "VoteRequest", "RegisterRequest", "LoginRequest", "OptionInput"} {
		ap := schema(name).AdditionalProperties
		if ap.Has == nil || !*ap.Has {
			t.Errorf("%s: additionalProperties must be true: bind ignores unknown fields", name)
		}
	}
	limit := doc.Paths.Value("/v1/polls").Get.Parameters.GetByInAndName("query", "limit").Schema.Value
	eqF("limit.minimum", limit.Min, 1)
	eqF("limit.maximum", limit.Max, 100)
}

// bindBody runs the handlers' JSON binder on body.
func bindBody(body string, dst any) error {
	gin.SetMode(gin.TestMode)
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest("POST", "/", strings.NewReader(body))
	return bind(c, dst)
}

// validAgainst reports whether body is valid under the named schema.
func validAgainst(t *testing.T, doc *openapi3.T, name, body string) bool {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("case body is not JSON: %v", err)
	}
	uuid := openapi3.WithStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(canonicalUUID))
	return doc.Components.Schemas[name].Value.VisitJSON(v, openapi3.EnableFormatValidation(), uuid) == nil
}

// canonicalUUID is the JSON Schema "uuid" format: 36 characters of hex and
// dashes, any version.
const canonicalUUID = `^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`

// TestOpenAPIVoteBodyMatchesServer feeds the same bodies to the document and
// to the server's own binder and option rules, so a schema that allows what
// the server refuses (or the reverse) fails here.
func TestOpenAPIVoteBodyMatchesServer(t *testing.T) {
	doc := loadContract(t)
	a, b := "3f0e5a1c-6d2b-4c6e-9a51-2b7d8e4f1a90", "9b2d7c1e-0a4f-4e3b-8c6d-5f1a2e3b4c5d"
	oa, _ := id.Parse(a)
	ob, _ := id.Parse(b)
	p := &poll.Poll{Settings: poll.Settings{AllowMultipleOptions: true}, Options: []poll.Option{{ID: oa}, {ID: ob}}}
	for _, body := range []string{
		`{"option_id":"` + a + `"}`,
		`{"option_ids":["` + a + `"]}`,
		`{"option_ids":["` + a + `","` + b + `"]}`,
		`{"option_id":"` + a + `","extra":1}`,
		`{"option_id":null,"option_ids":["` + a + `"]}`,
		`{"option_id":"` + a + `","option_ids":null}`,
		`{"option_id":"` + a + `","option_ids":["` + b + `"]}`,
		`{"option_id":"` + a + `","option_ids":[]}`,
		`{"option_ids":[]}`,
		`{"option_ids":["` + a + `","` + a + `"]}`,
		`{"option_id":null}`,
		`{"option_id":"not-a-uuid"}`,
		`{"option_id":7}`,
		`{}`,
		`[]`,
	} {
		var req voteRequest
		err := bindBody(body, &req)
		if err == nil {
			var opts []id.ID
			if opts, err = req.options(); err == nil {
				_, err = vote.Choose(p, opts)
			}
		}
		server, document := err == nil, validAgainst(t, doc, "VoteRequest", body)
		if server != document {
			t.Errorf("%s: server accepts=%v (%v), document accepts=%v", body, server, err, document)
		}
	}
}

// TestOpenAPIPollBodyMatchesServer does the same for the create-poll body;
// the rules the document can only describe are listed as such.
func TestOpenAPIPollBodyMatchesServer(t *testing.T) {
	doc := loadContract(t)
	two := `"options":[{"text":"a"},{"text":"b"}]`
	cases := []struct {
		body string
		// describedOnly: the server refuses what the schema cannot express
		// (it says so in a description).
		describedOnly bool
	}{
		{body: `{"title":"t",` + two + `}`},
		{body: `{"title":"t",` + two + `,"unknown":{"x":1}}`},
		{body: `{"title":"t","description":null,"start_time":null,"settings":null,` + two + `}`},
		{body: `{"title":"t",` + two + `,"settings":{"allow_multiple_options":true,"max_votes_per_user":2}}`},
		{body: `{"title":"t",` + two + `,"settings":{"max_votes_per_user":-1}}`},
		{body: `{"title":"t",` + two + `,"settings":{"results_visibility":"always"}}`},
		{body: `{"title":"t",` + two + `,"settings":{"results_visibility":"after_vote"}}`},
		{body: `{"title":"t",` + two + `,"settings":{"results_visibility":"after_close"}}`},
		{body: `{"title":"t",` + two + `,"settings":{"results_visibility":"owner_only"}}`},
		{body: `{"title":"t",` + two + `,"settings":{"results_visibility":null,"show_results_during_voting":null}}`},
		{body: `{"title":"t",` + two + `,"settings":{"results_visibility":"voters"}}`},
		{body: `{"title":"t",` + two + `,"settings":{"results_visibility":""}}`},
		{body: `{"title":"t",` + two + `,"settings":{"results_visibility":true}}`},
		{body: `{"title":"t",` + two + `,"settings":{"show_results_during_voting":false}}`},
		{body: `{"title":"t",` + two + `,"settings":{"show_results_during_voting":false,"results_visibility":"owner_only"}}`},
		{body: `{"title":"t",` + two + `,"settings":{"show_results_during_voting":true,"results_visibility":"always"}}`},
		{body: `{"title":"t",` + two + `,"settings":{"show_results_during_voting":true,"results_visibility":"after_close"}}`, describedOnly: true},
		{body: `{"title":"t",` + two + `,"settings":{"show_results_during_voting":false,"results_visibility":"always"}}`, describedOnly: true},
		{body: `{"title":"",` + two + `}`},
		{body: `{"title":"   ",` + two + `}`},
		{body: `{"title":"` + strings.Repeat("é", 255) + `",` + two + `}`},
		{body: `{"title":"` + strings.Repeat("x", 256) + `",` + two + `}`},
		{body: `{"title":"t","description":"` + strings.Repeat("d", 2001) + `",` + two + `}`},
		{body: `{"title":"t"}`},
		{body: `{"title":"t","options":[{"text":"a"}]}`},
		{body: `{"title":"t","options":[` + strings.Repeat(`{"text":"a"},`, 50) + `{"text":"b"}]}`},
		{body: `{"title":"t","options":[{"text":"a"},{"text":"` + strings.Repeat("o", 201) + `"}]}`},
		{body: `{"title":"t","options":[{"text":"a"},{"text":""}]}`},
		{body: `{"title":"t","options":[{"text":"a"},{"text":"a"}]}`},
		{body: `{"title":"t","options":[{"text":"a","display_order":-1},{"text":"b"}]}`},
		{body: `{"title":"t","options":[{"text":"a","display_order":2147483647},{"text":"b"}]}`},
		{body: `{"title":"t",` + two + `,"start_time":"2030-01-02T00:00:00Z","end_time":"2030-01-01T00:00:00Z"}`, describedOnly: true},
		{body: `{"title":"t","options":[{"text":"a"},{"text":"A "}]}`, describedOnly: true},
		{body: `{"title":"t",` + two + `,"settings":{"max_votes_per_user":2}}`, describedOnly: true},
		{body: `{"title":"t",` + two + `,"settings":{"embed_origins":["https://blog.example.com","http://127.0.0.1:8080"]}}`},
		{body: `{"title":"t",` + two + `,"settings":{"embed_origins":[]}}`},
		{body: `{"title":"t",` + two + `,"settings":{"embed_origins":null}}`},
		{body: `{"title":"t",` + two + `,"settings":{"embed_origins":["https://blog.example.com/"]}}`},
		{body: `{"title":"t",` + two + `,"settings":{"embed_origins":["https://*.example.com"]}}`},
		{body: `{"title":"t",` + two + `,"settings":{"embed_origins":["blog.example.com"]}}`},
		{body: `{"title":"t",` + two + `,"settings":{"embed_origins":["http://[::1]:8080"]}}`},
		{body: `{"title":"t",` + two + `,"settings":{"embed_origins":["https://a.example; script-src *"]}}`},
		{body: `{"title":"t",` + two + `,"settings":{"embed_origins":"https://blog.example.com"}}`},
		{body: `{"title":"t",` + two + `,"settings":{"embed_origins":["https://a.example","https://a.example"]}}`},
		{body: `{"title":"t",` + two + `,"settings":{"embed_origins":["https://s0.example","https://s1.example","https://s2.example","https://s3.example","https://s4.example","https://s5.example","https://s6.example","https://s7.example","https://s8.example","https://s9.example","https://s10.example"]}}`},
		{body: `{"title":"t",` + two + `,"settings":{"embed_origins":["https://a.example:99999"]}}`, describedOnly: true},
		{body: `{"title":"t",` + two + `,"settings":{"embed_origins":["https://a.example","https://A.example"]}}`, describedOnly: true},
		{body: `{"title":"t",` + two + `,"end_time":"yesterday"}`},
		{body: `{"title":1,` + two + `}`},
	}
	for _, tc := range cases {
		var req createPollRequest
		err := bindBody(tc.body, &req)
		if err == nil && req.Options == nil {
			err = errTest("options is required")
		}
		if err == nil {
			var settings poll.Settings
			if settings, err = createSettings(req.Settings); err == nil {
				err = poll.CreateInput{Title: req.Title, Description: req.Description, Options: toOptionInputs(req.Options),
					StartTime: req.StartTime.timePtr(), EndTime: req.EndTime.timePtr(), Settings: settings}.Validate()
			}
		}
		server, document := err == nil, validAgainst(t, doc, "PollCreate", tc.body)
		short := tc.body
		if len(short) > 100 {
			short = short[:100] + "…"
		}
		switch {
		case tc.describedOnly && (server || !document):
			t.Errorf("%s: expected a rule the document only describes (server accepts=%v, document accepts=%v)", short, server, document)
		case !tc.describedOnly && server != document:
			t.Errorf("%s: server accepts=%v (%v), document accepts=%v", short, server, err, document)
		}
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }

// The email pattern in the document is the server's, with the whitespace
// the server trims allowed around it.
func TestOpenAPIEmailPatternIsTheServers(t *testing.T) {
	reg := loadContract(t).Components.Schemas["RegisterRequest"].Value
	want := `^\s*` + strings.TrimSuffix(strings.TrimPrefix(auth.EmailPattern, "^"), "$") + `\s*$`
	if got := reg.Properties["email"].Value.Pattern; got != want {
		t.Fatalf("document's email pattern\n%s\nserver's\n%s", got, want)
	}
}

// TestOpenAPIResultsVisibility: the document's modes are the server's, the
// boolean is marked as the deprecated alias in what clients send and read,
// and the settings the server answers are the document's, valid under it
// for every mode.
func TestOpenAPIResultsVisibility(t *testing.T) {
	doc := loadContract(t)
	modes := []poll.ResultsVisibility{poll.ResultsAlways, poll.ResultsAfterVote, poll.ResultsAfterClose, poll.ResultsOwnerOnly}
	enum := doc.Components.Schemas["ResultsVisibility"].Value.Enum
	if len(enum) != len(modes) {
		t.Fatalf("ResultsVisibility enum %v, want %v", enum, modes)
	}
	for i, m := range modes {
		if enum[i] != string(m) || !m.Valid() {
			t.Fatalf("ResultsVisibility enum %v, want %v", enum, modes)
		}
	}
	if d := doc.Components.Schemas["ResultsVisibility"].Value.Default; d != string(poll.DefaultSettings.ResultsVisibility) {
		t.Errorf("ResultsVisibility default %v, want %s", d, poll.DefaultSettings.ResultsVisibility)
	}
	for _, name := range []string{"Settings", "SettingsInput"} {
		s := doc.Components.Schemas[name].Value
		if p := s.Properties["show_results_during_voting"]; p == nil || !p.Value.Deprecated {
			t.Errorf("%s.show_results_during_voting is not marked deprecated", name)
		}
		if s.Properties["results_visibility"] == nil {
			t.Errorf("%s has no results_visibility", name)
		}
	}
	props := doc.Components.Schemas["Settings"].Value.Properties
	for _, m := range modes {
		b, _ := json.Marshal(toSettings(poll.Settings{ResultsVisibility: m, BotPolicy: poll.BotFlag, AnonymousAccess: poll.AnonymousOpen}))
		var got map[string]any
		_ = json.Unmarshal(b, &got)
		if len(got) != len(props) {
			t.Errorf("%s: the server answers %d settings, the document names %d", m, len(got), len(props))
		}
		for k := range got {
			if props[k] == nil {
				t.Errorf("%s: the server answers settings.%s, which the document does not name", m, k)
			}
		}
		if got["results_visibility"] != string(m) || got["show_results_during_voting"] != (m == poll.ResultsAlways) {
			t.Errorf("%s: answered %v", m, got)
		}
		if !validAgainst(t, doc, "Settings", string(b)) {
			t.Errorf("%s: %s is not valid under Settings", m, b)
		}
	}
}
