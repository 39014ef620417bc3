package deploy

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// runbookBase is where the committed rules point; deploy/prometheus/render-rules
// swaps it for TALLY_RUNBOOK_BASE.
const runbookBase = "https://github.com/tally-vote/tally/blob/main/docs/operations.md"

type ruleFile struct {
	Groups []struct {
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadRules(t *testing.T, b []byte) ruleFile {
	t.Helper()
	var r ruleFile
	if err := yaml.Unmarshal(b, &r); err != nil {
		t.Fatalf("rules do not parse: %v", err)
	}
	return r
}

// headingAnchors returns the GitHub anchors of docs/operations.md's headings.
func headingAnchors(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	out := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		out[strings.ReplaceAll(drop.ReplaceAllString(h, ""), " ", "-")] = true
	}
	return out
}

// TestRunbookLinks holds every alert to an absolute runbook URL under the
// one base render-rules replaces, whose anchor is a heading of
// docs/operations.md (a relative link is dead in Alertmanager and Grafana).
func TestRunbookLinks(t *testing.T) {
	b, err := os.ReadFile("prometheus/tally-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	anchors := headingAnchors(t)
	alerts := 0
	for _, g := range loadRules(t, b).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			u := r.Annotations["runbook_url"]
			anchor, ok := strings.CutPrefix(u, runbookBase+"#")
			if !ok {
				t.Errorf("%s: runbook_url %q is not under %s#", r.Alert, u, runbookBase)
				continue
			}
			if !anchors[anchor] {
				t.Errorf("%s: docs/operations.md has no heading for #%s", r.Alert, anchor)
			}
		}
	}
	if alerts < 20 {
		t.Fatalf("found only %d alerts: the rules file or its parsing is broken", alerts)
	}
}

// TestRenderRulesBase checks render-rules moves every runbook link, and only
// those, to TALLY_RUNBOOK_BASE.
func TestRenderRulesBase(t *testing.T) {
	const base = "https://wiki.example.com/tally/operations"
	cmd := exec.Command("prometheus/render-rules")
	cmd.Env = append(os.Environ(), "TALLY_RUNBOOK_BASE="+base+"/")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("render-rules: %v", err)
	}
	if strings.Contains(string(out), runbookBase) {
		t.Errorf("rendered rules still link %s", runbookBase)
	}
	n := 0
	for _, g := range loadRules(t, out).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			if !strings.HasPrefix(r.Annotations["runbook_url"], base+"#") {
				t.Errorf("%s: rendered runbook_url %q", r.Alert, r.Annotations["runbook_url"])
			}
		}
	}
	if n == 0 {
		t.Fatal("rendered rules hold no alert")
	}
}

// TestAlertsHaveFiringTests: each alert listed here must fire in at least one
// case of tally-rules.test.yml (promtool then checks labels and text).
func TestAlertsHaveFiringTests(t *testing.T) {
	b, err := os.ReadFile("prometheus/tally-rules.test.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	fires := map[string]bool{}
	for _, tc := range doc.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			}
		}
	}
	for _, a := range []string{"TallyVoteErrorBudgetBurnFast", "TallyVoteLatencyBudgetBurnFast", "TallyConsumerLagHigh",
		"TallyRateLimitsUnchecked", "TallyDuplicateVoteSpike", "TallyDeadLetteredVotes", "TallyBotSignalSpike",
		"TallyLiveTallyLagHigh", "TallyWorkerQueueDelayHigh", "TallyVotesShed", "TallyLiveSocketsRefused"} {
		if !fires[a] {
			t.Errorf("%s never fires in tally-rules.test.yml", a)
		}
	}
}
