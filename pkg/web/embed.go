package web

import (
	"io/fs"
	"regexp"
	"strings"

	"github.com/gin-gonic/gin"
)

// EmbedRoute is the widget's route: one poll's results and vote form,
// compact, for other sites to frame. Which sites may is the poll's, so the
// route is mounted by httpapi, which reads the poll (see Embed.Serve).
const EmbedRoute = "/embed/:poll_id"

// Embed is the widget page.
type Embed struct {
	html []byte
}

// NewEmbed loads the widget page from the embedded assets.
func NewEmbed() (*Embed, error) {
	b, err := fs.ReadFile(static, "static/embed.html")
	if err != nil {
		return nil, err
	}
	return &Embed{html: b}, nil
}

// Serve answers the widget page with status. origins are the poll's
// settings.embed_origins: the only pages that may frame it. With none
// (also for a poll that does not exist, or could not be read) it keeps
// frame-ancestors 'none' and the X-Frame-Options: DENY every answer
// carries; it still answers, so a link to it opened on its own works.
// X-Frame-Options cannot name several origins (ALLOW-FROM is gone from
// every browser), and browsers that know frame-ancestors ignore it when
// the CSP names one, so it is dropped when origins are listed.
func (e *Embed) Serve(c *gin.Context, status int, origins []string) {
	fa := frameAncestors(origins)
	setCSP(c, embedCSP(fa))
	if fa != "'none'" {
		c.Writer.Header().Del("X-Frame-Options")
	}
	c.Header("Cache-Control", "no-cache")
	c.Data(status, "text/html; charset=utf-8", e.html)
}

// embedCSP is the page's CSP with frame-ancestors fa.
func embedCSP(fa string) string {
	return pageCSPHead + "frame-ancestors " + fa + "; connect-src 'self'"
}

// headerOriginRE is what an origin must look like to be written into the
// header. pkg/poll already refuses anything else on the way in; this check
// keeps a row written by other means from ending the directive.
var headerOriginRE = regexp.MustCompile(`^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?$`)

// frameAncestors is the frame-ancestors source list for origins: the
// origins themselves, or 'none' when there are none.
func frameAncestors(origins []string) string {
	var b strings.Builder
	for _, o := range origins {
		if !headerOriginRE.MatchString(o) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(o)
	}
	if b.Len() == 0 {
		return "'none'"
	}
	return b.String()
}
