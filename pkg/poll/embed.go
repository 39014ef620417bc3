package poll

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/tally-vote/tally/pkg/apperr"
)

// Embedding: the owner lists the sites whose pages may frame the poll's
// widget (/embed/{poll_id}); the page's Content-Security-Policy names them
// in frame-ancestors, and every other answer keeps 'none'.

// MaxEmbedOrigins bounds a poll's embed_origins: each one is a source in
// every embed answer's CSP header, and an owner embeds a poll on a few
// sites, not hundreds.
const MaxEmbedOrigins = 10

// MaxEmbedOriginLength bounds one origin (scheme, the longest DNS name and
// a port fit).
const MaxEmbedOriginLength = 300

// originRE is an origin as CSP's host-source can name it: http or https,
// written in lower case, a DNS name or IPv4 address (CSP has no syntax for IPv6 literals), an
// optional port, and nothing else: no path, query, user info or wildcard.
// Whatever it accepts can be written into a header as is. The OpenAPI
// document holds the same pattern.
var originRE = regexp.MustCompile(`^https?://[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(:[0-9]{1,5})?$`)

// checkEmbedOrigins holds a list of embed origins to what the header can
// carry: at most MaxEmbedOrigins exact origins, no two the same (browsers
// compare scheme and host without regard to case, so neither does this).
func checkEmbedOrigins(origins []string) error {
	const field = "settings.embed_origins"
	if len(origins) > MaxEmbedOrigins {
		return apperr.Invalid(field, "must list at most %d origins", MaxEmbedOrigins)
	}
	seen := make(map[string]bool, len(origins))
	for i, o := range origins {
		if len(o) > MaxEmbedOriginLength || !originRE.MatchString(o) {
			return apperr.Invalid(field, "origin %d must be a scheme (http or https), a host and an optional port, "+
				"such as https://blog.example.com, with no path and no wildcard", i)
		}
		if p := strings.LastIndexByte(o, ':'); p > len("https") {
			if n, _ := strconv.Atoi(o[p+1:]); n < 1 || n > 65535 {
				return apperr.Invalid(field, "origin %d has a port outside 1 to 65535", i)
			}
		}
		key := strings.ToLower(o)
		if seen[key] {
			return apperr.Invalid(field, "origin %d repeats another origin", i)
		}
		seen[key] = true
	}
	return nil
}
