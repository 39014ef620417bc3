package client

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	openapi_types "github.com/oapi-codegen/runtime/types"
)

// operationIDs reads every operationId of the API document.
func operationIDs(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("../httpapi/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, item := range doc.Paths {
		for _, method := range []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"} {
			if op, ok := item[method].(map[string]any); ok {
				id, _ := op["operationId"].(string)
				ids = append(ids, id)
			}
		}
	}
	sort.Strings(ids)
	return ids
}

// TestGeneratedClientsCoverEveryOperation is the quick half of the staleness
// check (make check-generate diffs the whole output): a route added to the
// document without `make generate` has no method in the Go client and no
// entry in the TypeScript types.
func TestGeneratedClientsCoverEveryOperation(t *testing.T) {
	ids := operationIDs(t)
	if len(ids) == 0 {
		t.Fatal("openapi.yaml has no operations")
	}
	typ := reflect.TypeFor[*ClientWithResponses]()
	methods := 0
	for i := range typ.NumMethod() {
		name := typ.Method(i).Name
		if strings.HasSuffix(name, "WithResponse") && !strings.HasSuffix(name, "WithBodyWithResponse") {
			methods++
		}
	}
	if methods != len(ids) {
		t.Errorf("ClientWithResponses has %d operations, openapi.yaml %d: run make generate", methods, len(ids))
	}
	ts, err := os.ReadFile("../../api/tally.d.ts")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if id == "" {
			t.Error("an operation has no operationId")
			continue
		}
		method := strings.ToUpper(id[:1]) + id[1:] + "WithResponse"
		if _, ok := typ.MethodByName(method); !ok {
			t.Errorf("operation %s: ClientWithResponses has no %s: run make generate", id, method)
		}
		if !strings.Contains(string(ts), "\n    "+id+": {\n") {
			t.Errorf("operation %s is not in api/tally.d.ts: run make generate", id)
		}
	}
}

// TestVoteRequestWire pins the body the client sends for the vote's
// oneOf to the two shapes the server takes.
func TestVoteRequestWire(t *testing.T) {
	a := openapi_types.UUID{0x3f, 0x0e, 0x5a, 0x1c, 0x6d, 0x2b, 0x4c, 0x6e, 0x9a, 0x51, 0x2b, 0x7d, 0x8e, 0x4f, 0x1a, 0x90}
	for _, tc := range []struct {
		name string
		req  func(t *testing.T) VoteRequest
		want string
	}{
		{
			name: "single by field",
			req:  func(*testing.T) VoteRequest { return VoteRequest{OptionId: &a} },
			want: `{"option_id":"3f0e5a1c-6d2b-4c6e-9a51-2b7d8e4f1a90"}`,
		},
		{
			name: "single by union branch",
			req: func(t *testing.T) VoteRequest {
				var v VoteRequest
				if err := v.FromVoteRequest0(VoteRequest0{OptionId: a}); err != nil {
					t.Fatal(err)
				}
				return v
			},
			want: `{"option_id":"3f0e5a1c-6d2b-4c6e-9a51-2b7d8e4f1a90"}`,
		},
		{
			name: "multiple",
			req: func(*testing.T) VoteRequest {
				return VoteRequest{OptionIds: &[]openapi_types.UUID{a}}
			},
			want: `{"option_ids":["3f0e5a1c-6d2b-4c6e-9a51-2b7d8e4f1a90"]}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.req(t))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("body = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestBearer(t *testing.T) {
	req, err := NewGetCurrentUserRequest("http://127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	if err := Bearer("tok")(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if got := req.Header.Get("Authorization"); got != "Bearer tok" {
		t.Errorf("Authorization = %q", got)
	}
	if req.Method != http.MethodGet || req.URL.Path != "/v1/users/me" {
		t.Errorf("request = %s %s", req.Method, req.URL.Path)
	}
}
