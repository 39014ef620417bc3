package httpapi

import (
	"bytes"

	"github.com/gin-gonic/gin"

	"github.com/tally-vote/tally/pkg/id"
)

// bodyBytes is a request body readBody read whole: a reader over it, and
// the bytes themselves, so a handler may parse them without reading the
// body again.
type bodyBytes struct {
	bytes.Reader
	b []byte
}

func newBodyBytes(b []byte) *bodyBytes {
	bb := &bodyBytes{b: b}
	bb.Reset(b)
	return bb
}

func (*bodyBytes) Close() error { return nil }

// bindVote reads a vote's body. The common well-formed body, such as
// {"option_id":"<uuid>"} or {"option_ids":["<uuid>","<uuid>"]}, is parsed
// in one pass over the bytes readBody kept (parseVoteBody); anything else
// goes through bind, which refuses or accepts it as it always did.
func bindVote(c *gin.Context, req *voteRequest) error {
	if bb, ok := c.Request.Body.(*bodyBytes); ok && int64(bb.Len()) == bb.Size() && parseVoteBody(bb.b, req) {
		return nil
	}
	return bind(c, req)
}

// parseVoteBody parses body into req when it is, with JSON white space
// anywhere between tokens, an object of "option_id" with a UUID string,
// "option_ids" with a non-empty array of UUID strings, or both, each key
// at most once and spelled in lower case, the UUIDs in their canonical
// 36-character form without escapes. For such a body bind's three steps
// (one JSON value, no duplicate key under case folding, json.Unmarshal)
// give the same req; it reports false, leaving req unspecified, for every
// other body, which bind then judges.
func parseVoteBody(body []byte, req *voteRequest) bool {
	p := voteScanner{b: body}
	if !p.next('{') {
		return false
	}
	var seenOne, seenMany bool
	for {
		switch {
		case p.key(`"option_id"`):
			if seenOne {
				return false
			}
			seenOne = true
			u, ok := p.uuid()
			if !ok {
				return false
			}
			req.OptionID = &u
		case p.key(`"option_ids"`):
			if seenMany {
				return false
			}
			seenMany = true
			if !p.next('[') {
				return false
			}
			ids := make([]id.ID, 0, 2)
			for {
				u, ok := p.uuid()
				if !ok {
					return false
				}
				ids = append(ids, u)
				if p.next(']') {
					break
				}
				if !p.next(',') {
					return false
				}
			}
			req.OptionIDs = ids
		default:
			return false
		}
		if p.next('}') {
			p.space()
			return p.i == len(p.b)
		}
		if !p.next(',') {
			return false
		}
	}
}

// voteScanner reads parseVoteBody's few tokens.
type voteScanner struct {
	b []byte
	i int
}

// space skips JSON white space.
func (p *voteScanner) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// next consumes c after white space, if it is there.
func (p *voteScanner) next(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// key consumes the quoted name k (closing quote included, so "option_id"
// is never read from "option_ids") and its colon, if they are next.
func (p *voteScanner) key(k string) bool {
	p.space()
	if !bytes.HasPrefix(p.b[p.i:], []byte(k)) {
		return false
	}
	save := p.i
	p.i += len(k)
	if !p.next(':') {
		p.i = save
		return false
	}
	return true
}

// uuid consumes a string holding a canonical UUID (8-4-4-4-12 hex digits
// of either case), the form every parser of ids reads alike.
func (p *voteScanner) uuid() (id.ID, bool) {
	var u id.ID
	p.space()
	const n = 36 + 2
	if len(p.b)-p.i < n || p.b[p.i] != '"' || p.b[p.i+n-1] != '"' {
		return u, false
	}
	s := p.b[p.i+1 : p.i+n-1]
	j := 0
	for k := 0; k < 36; k++ {
		if k == 8 || k == 13 || k == 18 || k == 23 {
			if s[k] != '-' {
				return u, false
			}
			continue
		}
		v, ok := hexValue(s[k])
		if !ok {
			return u, false
		}
		u[j/2] |= v << (4 * (1 - j%2))
		j++
	}
	p.i += n
	return u, true
}

func hexValue(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
