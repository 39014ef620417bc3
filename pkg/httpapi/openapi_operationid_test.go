package httpapi

import (
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// operationIDForm is lower camelCase: the generated Go client exports it as
// the method name (createPoll → CreatePoll), the TypeScript types key on it.
var operationIDForm = regexp.MustCompile(`^[a-z][A-Za-z0-9]*$`)

// operationIDProblems lists every operation of doc without an operationId,
// with one that is not lower camelCase, or sharing one with another
// operation. Generated clients name their methods after operationIds, so a
// missing one gets an invented name that changes when the path does.
func operationIDProblems(doc *openapi3.T) []string {
	var problems []string
	seen := map[string]string{}
	for _, path := range doc.Paths.InMatchingOrder() {
		for method, op := range doc.Paths.Value(path).Operations() {
			name := method + " " + path
			switch {
			case op.OperationID == "":
				problems = append(problems, name+" has no operationId")
			case !operationIDForm.MatchString(op.OperationID):
				problems = append(problems, name+" has operationId "+op.OperationID+", which is not lower camelCase")
			case seen[op.OperationID] != "":
				problems = append(problems, name+" shares operationId "+op.OperationID+" with "+seen[op.OperationID])
			default:
				seen[op.OperationID] = name
			}
		}
	}
	sort.Strings(problems)
	return problems
}

func TestOpenAPIOperationIDs(t *testing.T) {
	doc := loadContract(t)
	for _, p := range operationIDProblems(doc) {
		t.Error(p)
	}

	// The check refuses the documents it is meant to refuse.
	mustLoad := func(t *testing.T, src string) *openapi3.T {
		t.Helper()
		d, err := openapi3.NewLoader().LoadFromData([]byte(src))
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		return d
	}
	const head = "openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\npaths:\n"
	for _, tc := range []struct {
		name, paths, want string
	}{
		{
			name:  "all present and distinct",
			paths: "  /a: {get: {operationId: getA, responses: {\"200\": {description: ok}}}}\n  /b: {get: {operationId: getB, responses: {\"200\": {description: ok}}}}\n",
		},
		{
			name:  "missing",
			paths: "  /a: {get: {operationId: getA, responses: {\"200\": {description: ok}}}}\n  /b: {post: {responses: {\"200\": {description: ok}}}}\n",
			want:  "POST /b has no operationId",
		},
		{
			name:  "shared",
			paths: "  /a: {get: {operationId: getThing, responses: {\"200\": {description: ok}}}}\n  /b: {get: {operationId: getThing, responses: {\"200\": {description: ok}}}}\n",
			want:  "shares operationId getThing with GET /",
		},
		{
			name:  "not camelCase",
			paths: "  /a: {get: {operationId: get_a, responses: {\"200\": {description: ok}}}}\n",
			want:  "GET /a has operationId get_a, which is not lower camelCase",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(operationIDProblems(mustLoad(t, head+tc.paths)), "\n")
			if tc.want == "" && got != "" {
				t.Errorf("refused a good document: %s", got)
			}
			if tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("problems = %q, want one containing %q", got, tc.want)
			}
		})
	}
}
