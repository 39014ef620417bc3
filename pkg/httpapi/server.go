// Package httpapi is Tally's HTTP transport: the gin router, handlers,
// request/response shapes, middleware and the one place errors become HTTP.
package httpapi

import (
	"time"

	"github.com/gin-contrib/pprof"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/admit"
	"github.com/tally-vote/tally/pkg/anonaccess"
	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/auth"
	"github.com/tally-vote/tally/pkg/export"
	"github.com/tally-vote/tally/pkg/inclusion"
	"github.com/tally-vote/tally/pkg/live"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/ratelimit"
	"github.com/tally-vote/tally/pkg/receipt"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/vote"
	"github.com/tally-vote/tally/pkg/web"
	"github.com/tally-vote/tally/pkg/webhook"
)

// MaxBodyBytes is the request body cap from the SPEC.
const MaxBodyBytes = 1 << 20

// Deps are what the handlers need.
type Deps struct {
	Log       *zap.Logger
	Registry  *prometheus.Registry
	Checks    []Check
	Pprof     bool
	PublicURL string
	// HTTP holds the server's limits and edge policies.
	HTTP Config
	// TrustedProxies lists the proxies whose X-Forwarded-For is believed
	// when finding a client's IP; empty means the peer address is the IP.
	TrustedProxies []string
	Now            func() time.Time

	Auth    *auth.Service
	Polls   *poll.Service
	Votes   *vote.Service
	Tally   *tally.Service
	Hub     *live.Hub
	Limiter *ratelimit.Limiter
	// Statuses answers for async requests.
	Statuses *vote.Statuses
	// Gate bounds votes in flight; nil admits everything.
	Gate *admit.Gate
	// Anon admits anonymous voters to invite and proof-of-work polls; nil
	// refuses them there (503).
	Anon *anonaccess.Service
	// ReceiptKeys are the public keys served at ReceiptKeysPath; nil serves
	// an empty set.
	ReceiptKeys *receipt.Keyring
	// Inclusion answers GET …/receipts/{vote_id}; nil answers it 503.
	Inclusion *inclusion.Service
	// Audit reads a poll's owner-action chain for its owner; nil answers
	// the audit route 503.
	Audit AuditReader
	// Webhooks registers a poll's webhooks; nil answers the webhook routes
	// 503.
	Webhooks *webhook.Service
	// Exports reads the ballots of owner exports (cassandra.VoteSource);
	// nil answers the export route 503.
	Exports export.Source
	// ExportKey is the server secret the per-poll pseudonyms of owner
	// exports are keyed from (export.PollKey).
	ExportKey []byte
	// Tracer, when set, spans every request but the probes and /metrics;
	// nil installs no tracing middleware at all.
	Tracer trace.TracerProvider
}

type handlers struct {
	limiter *ratelimit.Limiter
	// voteRules are the vote route's limits, checked in the vote's
	// admission round trip rather than by a middleware (see castVote).
	voteRules []ratelimit.Rule
	auth      *auth.Service
	polls     *poll.Service
	votes     *vote.Service
	tally     *tally.Service
	hub       *live.Hub
	statuses  *vote.Statuses
	anon      *anonaccess.Service
	sockets   *liveSockets
	now       func() time.Time
	publicURL string
	audit     AuditReader
	webhooks  *webhook.Service
	inclusion *inclusion.Service
	// Owner exports: the source, the pseudonym secret, the owner's limit
	// rules, the metrics and the write timeout each write moves forward.
	exports       export.Source
	exportKey     []byte
	exportRules   []ratelimit.Rule
	exportMetrics *exportMetrics
	writeTimeout  time.Duration
}

// NewRouter builds the HTTP handler.
func NewRouter(d Deps) (*gin.Engine, error) {
	gin.SetMode(gin.ReleaseMode)
	d.HTTP = d.HTTP.withDefaults()
	r := gin.New()
	if err := r.SetTrustedProxies(d.TrustedProxies); err != nil {
		return nil, err
	}
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	m := newHTTPMetrics(d.Registry)
	if d.Tracer != nil {
		// First, so the request id, the access log and every handler's
		// logs run inside the request's span.
		r.Use(tracingMiddleware(d.Tracer))
	}
	r.Use(requestContext(d.Log), m.middleware(), recoverer(), securityHeaders(d.PublicURL))
	if mw := corsMiddleware(d.HTTP.AllowedOrigins); mw != nil {
		r.Use(mw)
	}
	// Bodies are read whole here, before the vote route's admission slot is
	// taken, so a client trickling its body holds no slot (issue 19, hole 11).
	r.Use(readBody(MaxBodyBytes, newBodyGate(d.HTTP, d.Registry)))
	r.NoRoute(func(c *gin.Context) { abort(c, apperr.New(apperr.CodeNotFound, "no such route")) })
	r.NoMethod(func(c *gin.Context) {
		abort(c, apperr.New(apperr.CodeMethodNotAllowed, "method not allowed on this route"))
	})

	probes(r, d.Registry, d.Checks, d.HTTP.OperatorToken)
	// The page (pkg/web) at "/", "/p/:poll_id" and "/assets/": a client of
	// the routes below, with its own CSP in place of the API's.
	if err := web.Register(r); err != nil {
		return nil, err
	}
	// The embed widget: the page, framable by the origins its poll lists.
	embeds, err := newEmbedPages(d.Polls, d.Registry)
	if err != nil {
		return nil, err
	}
	r.GET(web.EmbedRoute, embeds.serve)
	r.GET("/v1/openapi.json", openAPI)
	r.GET(ReceiptKeysPath, receiptKeys(d.ReceiptKeys))
	if d.Pprof {
		pprof.Register(r)
	}

	h := &handlers{limiter: d.Limiter, voteRules: d.Limiter.Rules(ratelimit.Vote), auth: d.Auth, polls: d.Polls, votes: d.Votes, tally: d.Tally, hub: d.Hub, statuses: d.Statuses, anon: d.Anon, now: d.Now, publicURL: d.PublicURL,
		audit:   d.Audit,
		exports: d.Exports, exportKey: d.ExportKey, exportRules: d.Limiter.Rules(ratelimit.Export),
		exportMetrics: newExportMetrics(d.Registry), writeTimeout: d.HTTP.WriteTimeout,
		webhooks: d.Webhooks, inclusion: d.Inclusion,
		sockets: newLiveSockets(d.HTTP, d.PublicURL, d.Registry)}
	required, optional := authenticate(d.Auth, true), authenticate(d.Auth, false)
	l := d.Limiter

	v1 := r.Group("/v1")
	v1.POST("/auth/register", limit(l, ratelimit.Register), h.register)
	v1.POST("/auth/login", limit(l, ratelimit.Login), h.login)
	v1.POST("/auth/anonymous", limit(l, ratelimit.Anonymous), h.anonymous)
	v1.GET("/users/me", required, h.me)

	v1.POST("/polls", required, accountOnly, limit(l, ratelimit.PollCreate), h.createPoll)
	v1.GET("/polls", required, accountOnly, h.listPolls)
	v1.GET("/polls/:poll_id", optional, h.getPoll)
	v1.PATCH("/polls/:poll_id", required, accountOnly, h.patchPoll)
	// The body is already read (readBody above): the admission slot bounds
	// work on votes, never a client's upload.
	v1.POST("/polls/:poll_id/votes", admission(d.Gate), required, h.castVote)
	v1.GET("/polls/:poll_id/votes/me", required, h.myVote)
	// Changes count against the vote route's limits, and hold an
	// admission slot like a vote.
	v1.PUT("/polls/:poll_id/votes/me", admission(d.Gate), required, limit(l, ratelimit.Vote), h.changeVote)
	v1.DELETE("/polls/:poll_id/votes/me", admission(d.Gate), required, limit(l, ratelimit.Vote), h.revokeVote)
	v1.GET("/polls/:poll_id/votes/requests/:request_id", required, h.requestStatus)
	v1.GET("/polls/:poll_id/results", optional, limit(l, ratelimit.Results), h.results)
	// Public: a receipt holder needs no account. Limited like results.
	v1.GET("/polls/:poll_id/receipts/:vote_id", optional, limit(l, ratelimit.Results), h.receipt)
	v1.GET("/polls/:poll_id/live", optional, h.live)
	v1.GET("/polls/:poll_id/results/stream", optional, h.resultsStream)
	v1.POST("/polls/:poll_id/invites", required, accountOnly, h.mintInvites)
	v1.GET("/polls/:poll_id/invites", required, accountOnly, h.inviteCounts)
	v1.GET("/polls/:poll_id/challenge", optional, h.challenge)
	v1.GET("/polls/:poll_id/flags", required, accountOnly, limit(l, ratelimit.Results), h.flags)
	v1.GET("/polls/:poll_id/audit", required, accountOnly, limit(l, ratelimit.Results), h.auditLog)
	v1.POST("/polls/:poll_id/webhooks", required, accountOnly, h.createWebhook)
	v1.GET("/polls/:poll_id/webhooks", required, accountOnly, h.listWebhooks)
	v1.DELETE("/polls/:poll_id/webhooks/:webhook_id", required, accountOnly, h.deleteWebhook)
	v1.POST("/polls/:poll_id/webhooks/:webhook_id/test", required, accountOnly, h.testWebhook)
	v1.GET("/polls/:poll_id/webhooks/:webhook_id/deliveries", required, accountOnly, limit(l, ratelimit.Results), h.webhookDeliveries)
	// Limited inside the handler, per owner, once the caller is the owner.
	v1.GET("/polls/:poll_id/export", required, accountOnly, h.exportPoll)
	return r, nil
}
