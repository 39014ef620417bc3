package httpapi

import (
	"encoding/json"
	"regexp"
	"time"
)

// rfc3339 matches the RFC 3339 date-time production: every field has its
// full width. time.Time's own decoder also takes a one-digit hour
// ("2100-01-01T0:00:00Z"), which the API document refuses (fuzzing found it).
var rfc3339 = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`)

// timestamp is a request time: RFC 3339 only, as the API document says.
type timestamp time.Time

func (t *timestamp) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if !rfc3339.MatchString(s) {
		return &time.ParseError{Layout: time.RFC3339, Value: s, Message: ": not RFC 3339"}
	}
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return err
	}
	*t = timestamp(v)
	return nil
}

// timePtr is t as the *time.Time the domain takes, nil when absent.
func (t *timestamp) timePtr() *time.Time {
	if t == nil {
		return nil
	}
	v := time.Time(*t)
	return &v
}
