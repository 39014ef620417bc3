package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/tally-vote/tally/pkg/receipt"
)

// ReceiptKeysPath is where the public receipt keys are served. It sits
// outside /v1 under /.well-known (RFC 8615) because a verifier fetches it
// by convention, from the host named on a receipt, without reading the API.
const ReceiptKeysPath = "/.well-known/tally-receipt-keys"

// receiptKeysMaxAge is how long a verifier or CDN may cache the list. A key
// is added to the ring before it signs (rotation is restart-driven), so a
// cached list misses a new key for at most this long after a rotation.
const receiptKeysMaxAge = "public, max-age=300"

// receiptKeySet is the JSON Web Key Set shape (RFC 7517 §5).
type receiptKeySet struct {
	Keys []receipt.JWK `json:"keys"`
}

// receiptKeys serves every public key on the ring, the active one first. A
// nil ring (receipts not configured) serves an empty set rather than a 404,
// so a verifier can tell "no keys" from "wrong host".
func receiptKeys(kr *receipt.Keyring) gin.HandlerFunc {
	set := receiptKeySet{Keys: []receipt.JWK{}}
	if kr != nil {
		set.Keys = kr.JWKs()
	}
	return func(c *gin.Context) {
		c.Header("Cache-Control", receiptKeysMaxAge)
		c.JSON(http.StatusOK, set)
	}
}
