package apperr

import "errors"

// Code is one of the SPEC's error codes. The set is closed: a code is one of
// the constants below, so a misspelt code does not compile, and the HTTP
// layer's one table gives each its status. Its text form is the SPEC's
// name, the one clients and stored failures read.
type Code int

// The SPEC's error codes. CodeInternal is the zero value: an error that names
// no code is an internal one.
const (
	CodeInternal Code = iota
	CodeValidationFailed
	CodeUnauthenticated
	CodeForbidden
	CodeNotPollOwner
	CodeResultsHidden
	CodeInviteRequired
	CodeInviteInvalid
	CodePoWRequired
	CodePoWInvalid
	CodeSuspiciousActivity
	CodeNotFound
	CodePollNotFound
	CodeRequestNotFound
	CodeMethodNotAllowed
	CodeEmailTaken
	CodeUsernameTaken
	CodeAlreadyVoted
	CodePollNotActive
	CodeOptionsFrozen
	CodeIdempotencyConflict
	CodeBodyTooLarge
	CodeInvalidOption
	CodeRateLimited
	CodeUnavailable
	CodeOverloaded
	CodeVoteChangeLimit
	CodeVoteChangeConflict
	numCodes
)

var codeNames = [numCodes]string{
	CodeInternal:            "INTERNAL",
	CodeValidationFailed:    "VALIDATION_FAILED",
	CodeUnauthenticated:     "UNAUTHENTICATED",
	CodeForbidden:           "FORBIDDEN",
	CodeNotPollOwner:        "NOT_POLL_OWNER",
	CodeResultsHidden:       "RESULTS_HIDDEN",
	CodeInviteRequired:      "INVITE_REQUIRED",
	CodeInviteInvalid:       "INVITE_INVALID",
	CodePoWRequired:         "POW_REQUIRED",
	CodePoWInvalid:          "POW_INVALID",
	CodeSuspiciousActivity:  "SUSPICIOUS_ACTIVITY",
	CodeNotFound:            "NOT_FOUND",
	CodePollNotFound:        "POLL_NOT_FOUND",
	CodeRequestNotFound:     "REQUEST_NOT_FOUND",
	CodeMethodNotAllowed:    "METHOD_NOT_ALLOWED",
	CodeEmailTaken:          "EMAIL_TAKEN",
	CodeUsernameTaken:       "USERNAME_TAKEN",
	CodeAlreadyVoted:        "ALREADY_VOTED",
	CodePollNotActive:       "POLL_NOT_ACTIVE",
	CodeOptionsFrozen:       "OPTIONS_FROZEN",
	CodeIdempotencyConflict: "IDEMPOTENCY_CONFLICT",
	CodeBodyTooLarge:        "BODY_TOO_LARGE",
	CodeInvalidOption:       "INVALID_OPTION",
	CodeRateLimited:         "RATE_LIMITED",
	CodeUnavailable:         "UNAVAILABLE",
	CodeOverloaded:          "OVERLOADED",
	CodeVoteChangeLimit:     "VOTE_CHANGE_LIMIT",
	CodeVoteChangeConflict:  "VOTE_CHANGE_CONFLICT",
}

// String is the code's SPEC name.
func (c Code) String() string {
	if c < 0 || c >= numCodes {
		return codeNames[CodeInternal]
	}
	return codeNames[c]
}

// MarshalText writes the SPEC name.
func (c Code) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// Codes lists every code, for tables that must cover them all.
func Codes() []Code {
	out := make([]Code, numCodes)
	for i := range out {
		out[i] = Code(i)
	}
	return out
}

// CodeOf is the code err carries: VALIDATION_FAILED for a ValidationError,
// its own for an Error, INTERNAL otherwise. Never the error's text, which
// may carry a dependency's details.
func CodeOf(err error) Code {
	var (
		ae *Error
		ve *ValidationError
	)
	switch {
	case errors.As(err, &ve):
		return CodeValidationFailed
	case errors.As(err, &ae):
		return ae.Code
	}
	return CodeInternal
}

// ParseCode reads a SPEC name back into its code.
func ParseCode(name string) (Code, bool) {
	for c, n := range codeNames {
		if n == name {
			return Code(c), true
		}
	}
	return CodeInternal, false
}
