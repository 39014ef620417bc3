//go:build integration

package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestLiveResultsWebSocket(t *testing.T) {
	e := newEnv(t)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, nil)
	voter, _ := e.c.Account()
	wsURL := "ws" + strings.TrimPrefix(e.c.Base, "http") + "/v1/polls/" + pollID + "/live?access_token=" + owner
	conn, resp, err := websocket.DefaultDialer.Dial(wsURL, nil)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	defer conn.Close()
	read := func() map[string]any {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		var frame map[string]any
		if err := conn.ReadJSON(&frame); err != nil {
			t.Fatalf("read frame: %v", err)
		}
		return frame
	}
	first := read()
	if first["type"] != "results" || first["poll_id"] != pollID || first["total_votes"].(float64) != 0 {
		t.Fatalf("first frame: %v", first)
	}
	e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[1]}).Must(t, http.StatusOK)
	for {
		f := read()
		if f["total_votes"].(float64) == 1 {
			for _, o := range f["options"].([]any) {
				m := o.(map[string]any)
				if m["option_id"] == opts[1] && m["votes"].(float64) != 1 {
					t.Fatalf("frame: %v", f)
				}
			}
			break
		}
	}

	// Hidden results are refused before the upgrade.
	hidden, _ := e.c.Poll(owner, map[string]any{"show_results_during_voting": false})
	outsider, _ := e.c.Account()
	_, resp, err = websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(e.c.Base, "http")+"/v1/polls/"+hidden+"/live?access_token="+outsider, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("hidden poll live: err %v resp %v", err, resp)
	}
}
