package client

import (
	"context"
	"net/http"
)

// Bearer returns a RequestEditorFn that sends token as the request's bearer
// credential, for the operations whose security is bearer. Pass it per call,
// or to NewClientWithResponses with WithRequestEditorFn for every call.
func Bearer(token string) RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}
