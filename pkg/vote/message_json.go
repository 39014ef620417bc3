package vote

import (
	"encoding/base64"
	"encoding/json"
	"strconv"

	"github.com/tally-vote/tally/pkg/wirejson"
)

// AppendJSON appends m's JSON to dst: the bytes encoding/json.Marshal
// writes for it, without reflection (the message is encoded once per
// accepted vote). Its error is encoding/json's, for the times
// encoding/json cannot write either.
func (m *Message) AppendJSON(dst []byte) ([]byte, error) {
	dst = append(dst, `{"request_id":`...)
	dst = wirejson.ID(dst, m.RequestID)
	dst = append(dst, `,"vote_id":`...)
	dst = wirejson.ID(dst, m.VoteID)
	dst = append(dst, `,"poll_id":`...)
	dst = wirejson.ID(dst, m.PollID)
	dst = append(dst, `,"voter_id":`...)
	dst = wirejson.ID(dst, m.VoterID)
	dst = append(dst, `,"option_ids":`...)
	dst = wirejson.IDs(dst, m.OptionIDs)
	if len(m.Scores) > 0 {
		dst = append(dst, `,"scores":[`...)
		for i, s := range m.Scores {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendInt(dst, int64(s), 10)
		}
		dst = append(dst, ']')
	}
	if m.IdempotencyKey != "" {
		dst = append(dst, `,"idempotency_key":`...)
		dst = wirejson.String(dst, m.IdempotencyKey)
	}
	dst = append(dst, `,"accepted_at":`...)
	dst, err := wirejson.Time(dst, m.AcceptedAt)
	if err != nil {
		return nil, m.marshalErr()
	}
	if m.Anonymous {
		dst = append(dst, `,"anonymous":true`...)
	}
	dst = appendOptionalString(dst, `,"ip":`, m.IP)
	dst = appendOptionalString(dst, `,"user_agent":`, m.UserAgent)
	dst = appendOptionalString(dst, `,"device":`, m.Device)
	if len(m.Flags) > 0 {
		dst = append(dst, `,"flags":`...)
		dst = wirejson.Strings(dst, m.Flags)
	}
	if !m.PollSeenAt.IsZero() {
		dst = append(dst, `,"poll_seen_at":`...)
		if dst, err = wirejson.Time(dst, m.PollSeenAt); err != nil {
			return nil, m.marshalErr()
		}
	}
	if m.OptionsVersion != 0 {
		dst = append(dst, `,"options_version":`...)
		dst = strconv.AppendInt(dst, int64(m.OptionsVersion), 10)
	}
	if m.PollVersion != 0 {
		dst = append(dst, `,"poll_version":`...)
		dst = strconv.AppendInt(dst, int64(m.PollVersion), 10)
	}
	dst = appendOptionalString(dst, `,"http_request_id":`, m.HTTPRequestID)
	if len(m.Commitment) > 0 {
		// encoding/json writes []byte as standard, padded base64.
		dst = append(dst, `,"commitment":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, m.Commitment)
		dst = append(dst, '"')
	}
	dst = appendOptionalString(dst, `,"change":`, m.Change)
	return append(dst, '}'), nil
}

// SizeHint is a capacity for AppendJSON's buffer that holds m unless its
// strings need many escapes.
func (m *Message) SizeHint() int {
	n := 400 + 39*len(m.OptionIDs) + 3*len(m.Scores) + len(m.IdempotencyKey) + len(m.IP) + len(m.UserAgent) + len(m.Device) + len(m.HTTPRequestID) + 4*len(m.Commitment)/3 + 20 + len(m.Change)
	for _, f := range m.Flags {
		n += len(f) + 3
	}
	return n
}

func appendOptionalString(dst []byte, key, s string) []byte {
	if s == "" {
		return dst
	}
	return wirejson.String(append(dst, key...), s)
}

// marshalErr is the error encoding/json gives for m (a time it cannot
// write), so a message that fails fails as it did before AppendJSON.
func (m *Message) marshalErr() error {
	_, err := json.Marshal(m)
	return err
}
