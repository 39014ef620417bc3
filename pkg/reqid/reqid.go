// Package reqid carries the HTTP request id (X-Request-Id) in a context,
// so the lines a request causes further down (the vote's outcome line, the
// worker's line for the same vote) name the request an operator sees in
// the access log and the response header.
package reqid

import "context"

type key struct{}

// With returns ctx carrying id.
func With(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, key{}, id)
}

// From returns the id ctx carries, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}
