package httpapi

import (
	_ "embed"
	"encoding/json"
	"net/http"

	"github.com/gin-gonic/gin"
	"gopkg.in/yaml.v3"
)

//go:embed openapi.yaml
var openAPIYAML []byte

// openAPIJSON is the document converted once; a parse failure is a build
// defect that the unit tests catch.
var openAPIJSON = func() []byte {
	var doc any
	if err := yaml.Unmarshal(openAPIYAML, &doc); err != nil {
		return nil
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil
	}
	return b
}()

func openAPI(c *gin.Context) {
	c.Data(http.StatusOK, "application/json", openAPIJSON)
}
