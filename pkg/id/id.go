// Package id is Tally's identifier type, owned by the project rather than
// the Cassandra driver: domain packages pass ids around, compare them and
// print them without importing gocql. An ID is a UUID; it marshals itself
// to CQL uuid and timeuuid columns, so the stores bind and scan it as is.
//
// Text, JSON and CQL forms are the driver's, byte for byte (the methods
// delegate to gocql.UUID): Kafka messages, Redis keys and exports written
// before this type existed read the same.
package id

import (
	"github.com/gocql/gocql"
)

// ID identifies a user, poll, option, vote or request.
type ID [16]byte

// VariantIETF is the RFC 4122 variant, the one every ID Tally makes has.
const VariantIETF = gocql.VariantIETF

// New returns a random (version 4) ID. It panics only if the system's
// random source fails, as crypto/rand itself does.
func New() ID { return ID(gocql.MustRandomUUID()) }

// Parse reads the text form of an ID (32 hex digits, dashes allowed
// between pairs).
func Parse(s string) (ID, error) {
	u, err := gocql.ParseUUID(s)
	return ID(u), err
}

// String is the canonical dashed lower-case form.
func (u ID) String() string { return gocql.UUID(u).String() }

// IsZero reports whether u is the zero ID (no id).
func (u ID) IsZero() bool { return u == ID{} }

// Bytes returns a copy of the 16 bytes.
func (u ID) Bytes() []byte { return gocql.UUID(u).Bytes() }

// Version is the UUID version (4 random, 5 name-based, 8 keyed hash).
func (u ID) Version() int { return gocql.UUID(u).Version() }

// Variant is the UUID variant (VariantIETF for every ID Tally makes).
func (u ID) Variant() int { return gocql.UUID(u).Variant() }

// MarshalJSON writes the canonical form as a JSON string.
func (u ID) MarshalJSON() ([]byte, error) { return gocql.UUID(u).MarshalJSON() }

// UnmarshalJSON reads a JSON string holding an ID.
func (u *ID) UnmarshalJSON(data []byte) error { return (*gocql.UUID)(u).UnmarshalJSON(data) }

// MarshalText writes the canonical form.
func (u ID) MarshalText() ([]byte, error) { return gocql.UUID(u).MarshalText() }

// UnmarshalText reads the text form.
func (u *ID) UnmarshalText(text []byte) error { return (*gocql.UUID)(u).UnmarshalText(text) }

// MarshalCQL writes u to a uuid or timeuuid column (gocql.Marshaler).
func (u ID) MarshalCQL(info gocql.TypeInfo) ([]byte, error) {
	return gocql.Marshal(info, gocql.UUID(u))
}

// UnmarshalCQL reads u from a uuid or timeuuid column; null reads as the
// zero ID (gocql.Unmarshaler).
func (u *ID) UnmarshalCQL(info gocql.TypeInfo, data []byte) error {
	return gocql.Unmarshal(info, data, (*gocql.UUID)(u))
}
