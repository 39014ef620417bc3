package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	body := []byte(`{"id":"x"}`)
	sig := Sign("s3cret", "1700000000", body)
	if len(sig) != len("sha256=")+64 || sig[:7] != "sha256=" {
		t.Fatalf("signature %q", sig)
	}
	if !Verify("s3cret", "1700000000", body, sig) {
		t.Fatal("own signature does not verify")
	}
	for _, bad := range []struct{ secret, ts, body string }{{"other", "1700000000", `{"id":"x"}`},
		{"s3cret", "1700000001", `{"id":"x"}`}, {"s3cret", "1700000000", `{"id":"y"}`}} {
		if Verify(bad.secret, bad.ts, []byte(bad.body), sig) {
			t.Fatalf("verifies with %+v", bad)
		}
	}
}

func TestGuardRefusesInternalTargets(t *testing.T) {
	g := Guard{}
	ctx := context.Background()
	for _, u := range []string{"http://127.0.0.1/", "http://localhost:8080/x", "http://10.1.2.3/", "http://192.168.0.1/",
		"http://172.16.0.1/", "http://169.254.169.254/latest/meta-data", "http://[::1]/", "http://0.0.0.0/",
		"http://[fe80::1]/", "http://100.64.0.1/", "ftp://example.com/", "http:///x", "http://user:pw@example.com/", "/relative"} {
		if err := g.CheckURL(ctx, u); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
	if err := g.CheckURL(ctx, "http://203.0.113.7/hook"); err != nil {
		t.Errorf("a public address refused: %v", err)
	}
	if err := (Guard{AllowPrivate: true}).CheckURL(ctx, "http://127.0.0.1:9/hook"); err != nil {
		t.Errorf("allowed loopback refused: %v", err)
	}
}

// The dial-time check catches what registration could not: a name that
// resolves to loopback now.
func TestGuardRefusesAtDialTime(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	_, err := Guard{}.Client(2 * time.Second).Get("http://localhost:" + port + "/")
	if !errors.Is(err, ErrForbiddenTarget) {
		t.Fatalf("dial to loopback: %v", err)
	}
	resp, err := Guard{AllowPrivate: true}.Client(2 * time.Second).Get(srv.URL)
	if err != nil {
		t.Fatalf("allowed dial: %v", err)
	}
	resp.Body.Close()
}
