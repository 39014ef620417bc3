// Package wirejson appends JSON values to a byte slice exactly as
// encoding/json.Marshal writes them, for the few documents on the vote's
// accept path (the 202 answer, the queued vote message) whose reflection
// encoding showed up in allocation profiles. Byte-identical output is the
// contract: the tests compare every function with encoding/json.
package wirejson

import (
	"time"
	"unicode/utf8"

	"github.com/tally-vote/tally/pkg/id"
)

const hexDigits = "0123456789abcdef"

// String appends s as a JSON string the way encoding/json.Marshal does
// (HTML escaping on): `"` and `\` escaped, control characters as \b \f \n
// \r \t or \u00XX, <, > and & as \u003c \u003e \u0026, U+2028 and U+2029
// escaped, and each byte that is not valid UTF-8 as \ufffd.
func String(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// ID appends u as encoding/json writes an id.ID: its canonical dashed
// lower-case form, quoted.
func ID(dst []byte, u id.ID) []byte {
	dst = append(dst, '"')
	for i, b := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigits[b>>4], hexDigits[b&0xF])
	}
	return append(dst, '"')
}

// IDs appends ids as encoding/json writes an []id.ID: null for a nil
// slice, else an array.
func IDs(dst []byte, ids []id.ID) []byte {
	if ids == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, u := range ids {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = ID(dst, u)
	}
	return append(dst, ']')
}

// Strings appends ss as encoding/json writes a []string.
func Strings(dst []byte, ss []string) []byte {
	if ss == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = String(dst, s)
	}
	return append(dst, ']')
}

// Time appends t as encoding/json writes a time.Time (RFC 3339 with
// nanoseconds, quoted). It fails where Time.MarshalJSON fails (a year
// outside 0–9999, a zone offset of 24 hours or more); the caller then
// encodes with encoding/json to get its error.
func Time(dst []byte, t time.Time) ([]byte, error) {
	dst = append(dst, '"')
	dst, err := t.AppendText(dst)
	if err != nil {
		return nil, err
	}
	return append(dst, '"'), nil
}
