package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestKubernetesManifestArgs checks that every container of deploy/k8s runs
// a real subcommand of this binary with flags it accepts and no stray
// arguments, by resolving the manifests' args against the real command tree.
func TestKubernetesManifestArgs(t *testing.T) {
	files, err := filepath.Glob("../../deploy/k8s/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var obj struct {
			Kind string `json:"kind"`
			Spec struct {
				Template struct {
					Spec struct {
						Containers []struct {
							Name    string   `json:"name"`
							Command []string `json:"command"`
							Args    []string `json:"args"`
						} `json:"containers"`
					} `json:"spec"`
				} `json:"template"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(b, &obj); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, c := range obj.Spec.Template.Spec.Containers {
			where := filepath.Base(f) + " container " + c.Name
			if len(c.Command) != 0 {
				t.Errorf("%s: command %v replaces the image's /tally entrypoint", where, c.Command)
				continue
			}
			if len(c.Args) == 0 {
				t.Errorf("%s: no args; the image's default is not stated in the manifest", where)
				continue
			}
			root := newRootCmd()
			cmd, rest, err := root.Find(c.Args)
			if err != nil || cmd == root || !cmd.Runnable() {
				t.Errorf("%s: %q is not a subcommand of tally (%v)", where, c.Args, err)
				continue
			}
			if err := cmd.ParseFlags(rest); err != nil {
				t.Errorf("%s: tally %s: %v", where, cmd.Name(), err)
				continue
			}
			if extra := cmd.Flags().Args(); len(extra) > 0 {
				t.Errorf("%s: tally %s takes no arguments, got %q", where, cmd.Name(), extra)
			}
			if cmd.Args != nil {
				if err := cmd.Args(cmd, cmd.Flags().Args()); err != nil {
					t.Errorf("%s: tally %s: %v", where, cmd.Name(), err)
				}
			}
			seen = append(seen, obj.Kind+":"+strings.Join(c.Args, " "))
		}
	}
	// The API, the worker and the migration must all be there: a manifest the
	// loop silently skipped would otherwise pass.
	for _, want := range []string{"Deployment:serve --with-worker=false", "Deployment:worker", "Job:migrate"} {
		if !slices.Contains(seen, want) {
			t.Errorf("no container runs %q; seen %q", want, seen)
		}
	}
}
