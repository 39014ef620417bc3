package httpapi

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-contrib/cors"
	"github.com/gin-gonic/gin"
)

// Config holds the HTTP server's limits and edge policies (TALLY_HTTP_*).
type Config struct {
	// ReadHeaderTimeout bounds the request line and headers; ReadTimeout the
	// whole request, body included (a body is at most 1 MiB), so a client
	// trickling bytes cannot hold a goroutine; WriteTimeout bounds writing the
	// answer; IdleTimeout how long a kept-alive connection waits for its next
	// request. Upgraded WebSockets set their own deadlines.
	ReadHeaderTimeout time.Duration `env:"READ_HEADER_TIMEOUT" envDefault:"5s"`
	ReadTimeout       time.Duration `env:"READ_TIMEOUT" envDefault:"15s"`
	WriteTimeout      time.Duration `env:"WRITE_TIMEOUT" envDefault:"30s"`
	IdleTimeout       time.Duration `env:"IDLE_TIMEOUT" envDefault:"120s"`
	// MaxHeaderBytes caps the request line plus headers (431 past it).
	MaxHeaderBytes int `env:"MAX_HEADER_BYTES" envDefault:"65536"`
	// BodyMaxPerClient caps the request bodies one client IP (an IPv6
	// client's /64) may be sending at once, in this process; the next
	// request is refused at once with 429. A body that arrives with its
	// headers counts only for the moment it is copied. 0 disables the cap.
	BodyMaxPerClient int `env:"BODY_MAX_PER_CLIENT" envDefault:"8"`

	// AllowedOrigins are browser origins (scheme://host[:port]) besides
	// PublicURL's own that may call the API cross-origin (CORS) and open
	// live sockets. Empty (the default) means CORS is closed.
	AllowedOrigins []string `env:"ALLOWED_ORIGINS" envSeparator:","`

	// OperatorToken, when set, unlocks /readyz's per-dependency detail for
	// a request bearing it; without it /readyz shows its status only.
	OperatorToken string `env:"OPERATOR_TOKEN"`

	// LiveMaxPerIP and LiveMaxTotal cap open live sockets per client IP
	// (429 past it) and in this process (503); 0 disables a cap.
	LiveMaxPerIP int `env:"LIVE_MAX_PER_IP" envDefault:"20"`
	LiveMaxTotal int `env:"LIVE_MAX_TOTAL" envDefault:"10000"`
	// LiveWriteTimeout is how long one frame may take to reach a socket's
	// kernel buffer; a client that reads slower is dropped.
	LiveWriteTimeout time.Duration `env:"LIVE_WRITE_TIMEOUT" envDefault:"5s"`
	// LiveSendBuffer is the socket send buffer of a live socket (bytes, 0:
	// the kernel's default), so a client that stops reading is noticed after
	// that much, not after megabytes.
	LiveSendBuffer int `env:"LIVE_SEND_BUFFER" envDefault:"65536"`
	// LiveRecheck is how often an open socket re-checks that its caller may
	// still see the results (the owner may hide them).
	LiveRecheck time.Duration `env:"LIVE_RECHECK" envDefault:"5s"`
}

// withDefaults fills the durations and sizes a Config built in code (not
// read from the environment) left zero; the caps keep 0 as "no cap".
func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ReadHeaderTimeout, 5*time.Second)
	def(&c.ReadTimeout, 15*time.Second)
	def(&c.WriteTimeout, 30*time.Second)
	def(&c.IdleTimeout, 120*time.Second)
	def(&c.LiveWriteTimeout, 5*time.Second)
	def(&c.LiveRecheck, 5*time.Second)
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	return c
}

// NewServer builds the http.Server with cfg's limits around h.
func NewServer(cfg Config, addr string, h http.Handler) *http.Server {
	cfg = cfg.withDefaults()
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
	}
}

// origin returns scheme://host of a URL, lower-cased; "" if it has none.
func origin(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

// originPolicy says which browser origins may use the API: PublicURL's own
// and the configured allow-list.
type originPolicy struct {
	own     string
	allowed map[string]bool
}

func newOriginPolicy(publicURL string, extra []string) originPolicy {
	p := originPolicy{own: origin(publicURL), allowed: map[string]bool{}}
	for _, o := range extra {
		if o = origin(o); o != "" {
			p.allowed[o] = true
		}
	}
	return p
}

// allows reports whether a request's Origin header is acceptable. A request
// without one comes from a non-browser client, which no origin policy can
// constrain (it could send any header it likes).
func (p originPolicy) allows(header string) bool {
	if header == "" {
		return true
	}
	o := origin(header)
	return o != "" && (o == p.own || p.allowed[o])
}

// corsMiddleware answers cross-origin requests and preflights from the
// configured origins; nil when none are configured (CORS closed: a browser
// on another origin cannot read any answer). A request from any other
// origin passes through untouched: without CORS headers the browser keeps
// the answer from the page, and the route answers in the SPEC's envelope.
func corsMiddleware(origins []string) gin.HandlerFunc {
	listed := map[string]bool{}
	var list []string
	for _, o := range origins {
		if o = origin(o); o != "" && !listed[o] {
			listed[o] = true
			list = append(list, o)
		}
	}
	if len(list) == 0 {
		return nil
	}
	mw := cors.New(cors.Config{
		AllowOrigins:  list,
		AllowMethods:  []string{http.MethodGet, http.MethodPost, http.MethodPatch},
		AllowHeaders:  []string{"Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id"},
		ExposeHeaders: []string{"Retry-After", "X-Request-Id", "Idempotent-Replayed", "Location"},
		MaxAge:        10 * time.Minute,
	})
	return func(c *gin.Context) {
		if listed[origin(c.GetHeader("Origin"))] {
			mw(c)
			return
		}
		c.Next()
	}
}

// securityHeaders sets the headers every answer carries. The API serves
// JSON only, so nothing may frame, sniff or load from it; an answer to a
// request bearing credentials is never stored by a cache; HSTS is sent when
// the public URL is https (the process may sit behind a TLS proxy).
func securityHeaders(publicURL string) gin.HandlerFunc {
	hsts := strings.HasPrefix(strings.ToLower(strings.TrimSpace(publicURL)), "https://")
	return func(c *gin.Context) {
		// The values are shared, read-only slices (keys already canonical):
		// Header.Set would allocate one per header per request. A later Set
		// replaces a slice and Add copies it (len == cap), so none is ever
		// written to.
		h := c.Writer.Header()
		h["X-Content-Type-Options"] = headerNosniff
		h["X-Frame-Options"] = headerDeny
		h["Content-Security-Policy"] = headerCSP
		h["Referrer-Policy"] = headerNoReferrer
		if hsts {
			h["Strict-Transport-Security"] = headerHSTS
		}
		if c.GetHeader("Authorization") != "" || c.Query("access_token") != "" {
			h["Cache-Control"] = headerNoStore
		}
		c.Next()
	}
}

var (
	headerNosniff    = []string{"nosniff"}
	headerDeny       = []string{"DENY"}
	headerCSP        = []string{"default-src 'none'; frame-ancestors 'none'"}
	headerNoReferrer = []string{"no-referrer"}
	headerHSTS       = []string{"max-age=63072000; includeSubDomains"}
	headerNoStore    = []string{"no-store"}
)
