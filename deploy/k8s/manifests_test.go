// Package k8s_test keeps the Kubernetes manifests of deploy/k8s honest on a
// machine without a cluster: every object decodes strictly into the official
// Kubernetes Go types (an unknown or misspelt field fails), the KEDA
// ScaledObject into a mirror of KEDA's documented v1alpha1 fields, every
// TALLY_* variable exists in pkg/config and the settings load, and the
// objects refer to each other correctly. cmd/tally's manifests test checks
// that the container arguments name real subcommands and flags.
package k8s_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/tally-vote/tally/pkg/config"
)

// Drain times of the binary the grace periods must cover.
const (
	// serveDrain is srv.Shutdown's timeout in cmd/tally/app.go.
	serveDrain = 15 * time.Second
	// commitTimeout bounds the worker's last offset commit (pkg/kafkax/votes).
	commitTimeout = 10 * time.Second
)

// ---- KEDA keda.sh/v1alpha1 ScaledObject, as documented in KEDA's
// "ScaledObject specification" and "Apache Kafka" scaler pages. Only these
// fields exist; strict decoding refuses anything else.

type scaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              scaledObjectSpec `json:"spec"`
}

type scaledObjectSpec struct {
	ScaleTargetRef        *scaleTarget  `json:"scaleTargetRef"`
	PollingInterval       *int32        `json:"pollingInterval,omitempty"`
	CooldownPeriod        *int32        `json:"cooldownPeriod,omitempty"`
	InitialCooldownPeriod *int32        `json:"initialCooldownPeriod,omitempty"`
	IdleReplicaCount      *int32        `json:"idleReplicaCount,omitempty"`
	MinReplicaCount       *int32        `json:"minReplicaCount,omitempty"`
	MaxReplicaCount       *int32        `json:"maxReplicaCount,omitempty"`
	Fallback              *kedaFallback `json:"fallback,omitempty"`
	Advanced              *kedaAdvanced `json:"advanced,omitempty"`
	Triggers              []kedaTrigger `json:"triggers"`
}

type scaleTarget struct {
	APIVersion             string `json:"apiVersion,omitempty"`
	Kind                   string `json:"kind,omitempty"`
	Name                   string `json:"name"`
	EnvSourceContainerName string `json:"envSourceContainerName,omitempty"`
}

type kedaFallback struct {
	FailureThreshold int32  `json:"failureThreshold"`
	Replicas         int32  `json:"replicas"`
	Behavior         string `json:"behavior,omitempty"`
}

type kedaAdvanced struct {
	RestoreToOriginalReplicaCount bool                  `json:"restoreToOriginalReplicaCount,omitempty"`
	HorizontalPodAutoscalerConfig *kedaHPAConfig        `json:"horizontalPodAutoscalerConfig,omitempty"`
	ScalingModifiers              *kedaScalingModifiers `json:"scalingModifiers,omitempty"`
}

type kedaHPAConfig struct {
	Name     string                                         `json:"name,omitempty"`
	Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
}

type kedaScalingModifiers struct {
	Target           string `json:"target"`
	ActivationTarget string `json:"activationTarget,omitempty"`
	MetricType       string `json:"metricType,omitempty"`
	Formula          string `json:"formula"`
}

type kedaTrigger struct {
	Type              string            `json:"type"`
	Name              string            `json:"name,omitempty"`
	UseCachedMetrics  bool              `json:"useCachedMetrics,omitempty"`
	MetricType        string            `json:"metricType,omitempty"`
	Metadata          map[string]string `json:"metadata"`
	AuthenticationRef *struct {
		Name string `json:"name"`
		Kind string `json:"kind,omitempty"`
	} `json:"authenticationRef,omitempty"`
}

// kafkaScalerParams are the kafka trigger's documented metadata keys.
var kafkaScalerParams = []string{
	"bootstrapServers", "consumerGroup", "topic", "lagThreshold", "activationLagThreshold",
	"offsetResetPolicy", "allowIdleConsumers", "scaleToZeroOnInvalidOffset", "excludePersistentLag",
	"limitToPartitionsWithLag", "ensureEvenDistributionOfPartitions", "version", "partitionLimitation",
	"sasl", "saslTokenProvider", "tls", "unsafeSsl", "awsRegion",
}

// ---- kustomization.yaml, the fields this directory uses.

type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Labels     []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors"`
		IncludeTemplates bool              `json:"includeTemplates"`
	} `json:"labels"`
	Resources []string    `json:"resources"`
	Images    []kustImage `json:"images"`
}

type kustImage struct {
	Name    string `json:"name"`
	NewName string `json:"newName,omitempty"`
	NewTag  string `json:"newTag,omitempty"`
	Digest  string `json:"digest,omitempty"`
}

// kinds maps apiVersion/kind to the type a manifest must decode into.
var kinds = map[string]func() any{
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                              func() any { return &corev1.Secret{} },
	"batch/v1/Job":                           func() any { return &batchv1.Job{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"keda.sh/v1alpha1/ScaledObject":          func() any { return &scaledObject{} },
}

// strictUnmarshal decodes YAML the way kubectl and the API server do: YAML
// to JSON without regard to the target (so 12 stays a number and does not
// become the string a ConfigMap needs), then JSON with the API machinery's
// own strict decoder: field names are case-sensitive, and unknown or
// duplicate fields and wrongly typed values are errors.
func strictUnmarshal(doc []byte, into any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strictErrs, err := kjson.UnmarshalStrict(j, into)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

// decode strictly decodes one YAML document into the Go type of its kind.
func decode(doc []byte) (any, error) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, err
	}
	var tm metav1.TypeMeta
	if err := kjson.UnmarshalCaseSensitivePreserveInts(j, &tm); err != nil {
		return nil, err
	}
	newObj, ok := kinds[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return nil, fmt.Errorf("unexpected apiVersion %q kind %q", tm.APIVersion, tm.Kind)
	}
	obj := newObj()
	if err := strictUnmarshal(doc, obj); err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	if so, ok := obj.(*scaledObject); ok {
		if err := checkScaledObject(so); err != nil {
			return nil, err
		}
	}
	return obj, nil
}

// checkScaledObject enforces what KEDA's admission would: mandatory fields
// and the kafka trigger's documented parameters (metadata is a string map,
// so strict decoding alone cannot catch a misspelt key).
func checkScaledObject(so *scaledObject) error {
	if so.Spec.ScaleTargetRef == nil || so.Spec.ScaleTargetRef.Name == "" {
		return fmt.Errorf("ScaledObject %s: scaleTargetRef.name is mandatory", so.Name)
	}
	if len(so.Spec.Triggers) == 0 {
		return fmt.Errorf("ScaledObject %s: no triggers", so.Name)
	}
	if f := so.Spec.Fallback; f != nil && (f.FailureThreshold <= 0 || f.Replicas <= 0) {
		return fmt.Errorf("ScaledObject %s: fallback needs failureThreshold and replicas", so.Name)
	}
	for _, tr := range so.Spec.Triggers {
		if tr.Type != "kafka" {
			return fmt.Errorf("ScaledObject %s: trigger type %q, want kafka", so.Name, tr.Type)
		}
		for k := range tr.Metadata {
			if !slices.Contains(kafkaScalerParams, k) {
				return fmt.Errorf("ScaledObject %s: kafka trigger has no parameter %q", so.Name, k)
			}
		}
		for _, k := range []string{"bootstrapServers", "consumerGroup", "topic", "lagThreshold"} {
			if tr.Metadata[k] == "" {
				return fmt.Errorf("ScaledObject %s: kafka trigger needs %s", so.Name, k)
			}
		}
	}
	return nil
}

// splitDocs splits a YAML stream on its "---" separator lines.
func splitDocs(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(append([]byte("\n"), b...), []byte("\n---")) {
		if len(bytes.TrimSpace(stripComments(d))) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

func stripComments(b []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// manifests is the decoded set, by kind.
type manifests struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	configMaps  []*corev1.ConfigMap
	secrets     []*corev1.Secret
	jobs        []*batchv1.Job
	pdbs        []*policyv1.PodDisruptionBudget
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	scaled      []*scaledObject
	kust        kustomization
}

func load(t *testing.T) manifests {
	t.Helper()
	var m manifests
	kb, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := strictUnmarshal(kb, &m.kust); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	for _, f := range m.kust.Resources {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("kustomization.yaml lists %s: %v", f, err)
		}
		docs := splitDocs(b)
		if len(docs) == 0 {
			t.Fatalf("%s holds no object", f)
		}
		for _, d := range docs {
			obj, err := decode(d)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			switch o := obj.(type) {
			case *appsv1.Deployment:
				m.deployments = append(m.deployments, o)
			case *corev1.Service:
				m.services = append(m.services, o)
			case *corev1.ConfigMap:
				m.configMaps = append(m.configMaps, o)
			case *corev1.Secret:
				m.secrets = append(m.secrets, o)
			case *batchv1.Job:
				m.jobs = append(m.jobs, o)
			case *policyv1.PodDisruptionBudget:
				m.pdbs = append(m.pdbs, o)
			case *autoscalingv2.HorizontalPodAutoscaler:
				m.hpas = append(m.hpas, o)
			case *scaledObject:
				m.scaled = append(m.scaled, o)
			}
		}
	}
	return m
}

// podTemplates names every pod template: Deployments' and Jobs'.
func (m manifests) podTemplates() map[string]*corev1.PodTemplateSpec {
	out := map[string]*corev1.PodTemplateSpec{}
	for _, d := range m.deployments {
		out["Deployment/"+d.Name] = &d.Spec.Template
	}
	for _, j := range m.jobs {
		out["Job/"+j.Name] = &j.Spec.Template
	}
	return out
}

func (m manifests) deployment(name string) *appsv1.Deployment {
	for _, d := range m.deployments {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// envSettings is what the pods' environment holds: every ConfigMap's data
// and Secret's keys (all are read with envFrom).
func (m manifests) envSettings() map[string]string {
	out := map[string]string{}
	for _, c := range m.configMaps {
		for k, v := range c.Data {
			out[k] = v
		}
	}
	for _, s := range m.secrets {
		for k, v := range s.StringData {
			out[k] = v
		}
		for k, v := range s.Data {
			out[k] = string(v)
		}
	}
	return out
}

func TestManifestsDecodeStrictly(t *testing.T) {
	m := load(t)
	if len(m.deployments) != 2 || len(m.services) != 1 || len(m.configMaps) != 1 || len(m.secrets) != 1 ||
		len(m.jobs) != 1 || len(m.pdbs) != 2 || len(m.hpas) != 1 || len(m.scaled) != 1 {
		t.Fatalf("want 2 Deployments, a Service, ConfigMap, Secret, Job, 2 PDBs, an HPA and a ScaledObject; got %d %d %d %d %d %d %d %d",
			len(m.deployments), len(m.services), len(m.configMaps), len(m.secrets), len(m.jobs), len(m.pdbs),
			len(m.hpas), len(m.scaled))
	}
}

// TestStrictDecodeRefusesMisspelling shows the check bites: each manifest
// with one field misspelt, or a value of the wrong type, fails to decode.
func TestStrictDecodeRefusesMisspelling(t *testing.T) {
	for _, tc := range []struct{ file, from, to string }{
		{"api-deployment.yaml", "readinessProbe:", "readinesProbe:"},
		{"api-deployment.yaml", "readOnlyRootFilesystem:", "readOnlyRootFileSystem:"},
		{"api-deployment.yaml", "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: \"30\""},
		{"worker-deployment.yaml", "envFrom:", "envfrom:"},
		{"api-service.yaml", "targetPort:", "targetport:"},
		{"api-hpa.yaml", "averageUtilization:", "averageUtilisation:"},
		{"api-pdb.yaml", "maxUnavailable:", "maxUnavaliable:"},
		{"worker-pdb.yaml", "unhealthyPodEvictionPolicy:", "unhealthyPodEvictionPolicies:"},
		{"migrate-job.yaml", "ttlSecondsAfterFinished:", "ttlSecondAfterFinished:"},
		{"configmap.yaml", "data:", "date:"},
		{"configmap.yaml", `TALLY_KAFKA_VOTES_PARTITIONS: "12"`, "TALLY_KAFKA_VOTES_PARTITIONS: 12"},
		{"api-deployment.yaml", "      containers:", "      containers:\n        - name: dup\n      containers:"},
		{"secret.yaml", "stringData:", "stringdata:"},
		{"worker-scaledobject.yaml", "maxReplicaCount:", "maxReplicas:"},
		{"worker-scaledobject.yaml", "stabilizationWindowSeconds:", "stabilisationWindowSeconds:"},
		{"worker-scaledobject.yaml", "lagThreshold:", "lagTreshold:"},
		{"worker-scaledobject.yaml", "lagThreshold: \"2000\"", "lagThreshold: 2000"},
		{"worker-scaledobject.yaml", "consumerGroup:", "group:"},
	} {
		b, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decode(b); err != nil {
			t.Fatalf("%s as written: %v", tc.file, err)
		}
		if !bytes.Contains(b, []byte(tc.from)) {
			t.Fatalf("%s has no %q to misspell", tc.file, tc.from)
		}
		bad := bytes.Replace(b, []byte(tc.from), []byte(tc.to), 1)
		if _, err := decode(bad); err == nil {
			t.Errorf("%s with %q decoded without error", tc.file, tc.to)
		}
	}
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	m := load(t)
	if m.kust.APIVersion != "kustomize.config.k8s.io/v1beta1" || m.kust.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml is %s %s", m.kust.APIVersion, m.kust.Kind)
	}
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files = slices.DeleteFunc(files, func(f string) bool { return f == "kustomization.yaml" })
	listed := slices.Clone(m.kust.Resources)
	sort.Strings(listed)
	sort.Strings(files)
	if !slices.Equal(listed, files) {
		t.Errorf("kustomization.yaml resources %v, directory holds %v", listed, files)
	}
	// Every container's image is one the images transformer rewrites.
	for name, pt := range m.podTemplates() {
		for _, c := range pt.Spec.Containers {
			if !slices.ContainsFunc(m.kust.Images, func(i kustImage) bool { return i.Name == c.Image }) {
				t.Errorf("%s container %s: image %q is not in kustomization.yaml images", name, c.Name, c.Image)
			}
		}
	}
}

// configEnv lists every variable config.Load reads: TALLY_ + each field's
// env tag, under the envPrefix of the structs that hold it.
func configEnv() map[string]bool {
	out := map[string]bool{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			if name, ok := f.Tag.Lookup("env"); ok {
				out[prefix+strings.Split(name, ",")[0]] = true
				continue
			}
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				walk(ft, prefix+f.Tag.Get("envPrefix"))
			}
		}
	}
	walk(reflect.TypeFor[config.Config](), "TALLY_")
	return out
}

func TestEnvNamesExistInConfig(t *testing.T) {
	m := load(t)
	known := configEnv()
	if !known["TALLY_JWT_SECRET"] || !known["TALLY_KAFKA_VOTES_TOPIC"] || !known["TALLY_HTTP_ADDR"] {
		t.Fatalf("the config walk missed known variables: %d found", len(known))
	}
	check := func(where, name string) {
		if !strings.HasPrefix(name, "TALLY_") {
			t.Errorf("%s: %s is not a TALLY_ setting (envFrom would pass it to tally, which ignores it)", where, name)
			return
		}
		if !known[name] {
			t.Errorf("%s: %s is not a setting of pkg/config", where, name)
		}
	}
	for _, c := range m.configMaps {
		for k := range c.Data {
			check("ConfigMap/"+c.Name, k)
		}
	}
	for _, s := range m.secrets {
		for k := range s.StringData {
			check("Secret/"+s.Name, k)
		}
		for k := range s.Data {
			check("Secret/"+s.Name, k)
		}
	}
	// Variables set on a container: TALLY_* must exist; the others are the Go
	// runtime's.
	for name, pt := range m.podTemplates() {
		for _, c := range pt.Spec.Containers {
			for _, e := range c.Env {
				if strings.HasPrefix(e.Name, "TALLY_") {
					check(name, e.Name)
				} else if e.Name != "GOMEMLIMIT" && e.Name != "GOMAXPROCS" && e.Name != "GOGC" {
					t.Errorf("%s: unexpected variable %s", name, e.Name)
				}
			}
			for _, ef := range c.EnvFrom {
				switch {
				case ef.ConfigMapRef != nil:
					if !slices.ContainsFunc(m.configMaps, func(cm *corev1.ConfigMap) bool { return cm.Name == ef.ConfigMapRef.Name }) {
						t.Errorf("%s reads ConfigMap %s, which is not here", name, ef.ConfigMapRef.Name)
					}
				case ef.SecretRef != nil:
					if !slices.ContainsFunc(m.secrets, func(s *corev1.Secret) bool { return s.Name == ef.SecretRef.Name }) {
						t.Errorf("%s reads Secret %s, which is not here", name, ef.SecretRef.Name)
					}
				}
			}
		}
	}
}

// setEnv makes the process environment exactly env as far as TALLY_*
// variables go, restored after the test.
func setEnv(t *testing.T, env map[string]string) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "TALLY_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
}

// loadConfig runs config.Load, the binary's own reading and checking, on the
// manifests' settings.
func loadConfig(t *testing.T, env map[string]string) (config.Config, error) {
	setEnv(t, env)
	return config.Load()
}

// loadWithSecret loads the manifests and the configuration their settings
// give once a strong secret replaces the placeholder.
func loadWithSecret(t *testing.T) (manifests, config.Config) {
	t.Helper()
	m := load(t)
	env := m.envSettings()
	env["TALLY_JWT_SECRET"] = strongSecret(t)
	env["TALLY_RECEIPT_KEYS"] = strongSecret(t)
	cfg, err := loadConfig(t, env)
	if err != nil {
		t.Fatal(err)
	}
	return m, cfg
}

func strongSecret(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// TestSettingsLoad: the ConfigMap's values parse, and pass the production
// checks once a real secret replaces the placeholder, which is refused.
func TestSettingsLoad(t *testing.T) {
	m := load(t)
	env := m.envSettings()
	if env["TALLY_ENV"] != config.Production {
		t.Errorf("TALLY_ENV is %q, want %q", env["TALLY_ENV"], config.Production)
	}
	if _, err := loadConfig(t, env); err == nil {
		t.Error("the placeholder TALLY_JWT_SECRET was accepted; pods must refuse to start until it is replaced")
	} else {
		t.Logf("placeholder refused: %v", err)
	}
	env["TALLY_JWT_SECRET"] = strongSecret(t)
	if _, err := loadConfig(t, env); err == nil {
		t.Error("the placeholder TALLY_RECEIPT_KEYS was accepted; pods must refuse to start until it is replaced")
	} else {
		t.Logf("placeholder receipt key refused: %v", err)
	}
	env["TALLY_RECEIPT_KEYS"] = strongSecret(t) // a 32-byte seed in base64
	cfg, err := loadConfig(t, env)
	if err != nil {
		t.Fatalf("the manifests' settings do not load: %v", err)
	}
	if !cfg.Receipt.Enabled {
		t.Error("receipts are off in the manifests")
	}
	if cfg.Pprof || cfg.RateLimit.DisablePerIP {
		t.Error("pprof or the load-test switch is on")
	}
}

// TestProbesAndPorts: each Deployment's one port is where its command
// listens (serve: TALLY_HTTP_ADDR; worker: TALLY_WORKER_ADDR, probes and
// metrics only), on every interface, and the probes and the Prometheus
// scrape annotations point at it.
func TestProbesAndPorts(t *testing.T) {
	m, cfg := loadWithSecret(t)
	ports := map[string]string{}
	for name, addr := range map[string]string{"TALLY_HTTP_ADDR": cfg.HTTPAddr, "TALLY_WORKER_ADDR": cfg.WorkerAddr} {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("%s %q: %v", name, addr, err)
		}
		if host != "" && host != "0.0.0.0" && host != "::" {
			t.Errorf("%s %q listens on %s only; probes, scrapes and the Service come from outside the pod", name, addr, host)
		}
		ports[name] = port
	}
	for _, d := range m.deployments {
		cs := d.Spec.Template.Spec.Containers
		if len(cs) != 1 {
			t.Fatalf("Deployment/%s has %d containers, want 1", d.Name, len(cs))
		}
		c := cs[0]
		addrVar := "TALLY_HTTP_ADDR"
		if len(c.Args) > 0 && c.Args[0] == "worker" {
			addrVar = "TALLY_WORKER_ADDR"
		}
		port := ports[addrVar]
		if len(c.Ports) != 1 || fmt.Sprint(c.Ports[0].ContainerPort) != port {
			t.Errorf("Deployment/%s ports %v, want one on %s (%s)", d.Name, c.Ports, port, addrVar)
			continue
		}
		ann := d.Spec.Template.Annotations
		if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != port || ann["prometheus.io/path"] != "/metrics" {
			t.Errorf("Deployment/%s scrape annotations %v, want /metrics on %s (%s)", d.Name, ann, port, addrVar)
		}
		probe := func(kind string, p *corev1.Probe, path string) {
			if p == nil || p.HTTPGet == nil {
				t.Errorf("Deployment/%s has no HTTP %s probe", d.Name, kind)
				return
			}
			if p.HTTPGet.Path != path {
				t.Errorf("Deployment/%s %s probe on %s, want %s", d.Name, kind, p.HTTPGet.Path, path)
			}
			if pp := p.HTTPGet.Port; pp.String() != c.Ports[0].Name && pp.String() != port {
				t.Errorf("Deployment/%s %s probe on port %s, the container listens on %s (%s)", d.Name, kind, pp.String(),
					c.Ports[0].Name, port)
			}
			// /readyz gives its dependency checks 2 s.
			if path == "/readyz" && p.TimeoutSeconds < 3 {
				t.Errorf("Deployment/%s readiness timeout %d s is shorter than /readyz's 2 s checks", d.Name, p.TimeoutSeconds)
			}
		}
		probe("liveness", c.LivenessProbe, "/healthz")
		probe("readiness", c.ReadinessProbe, "/readyz")
		if c.StartupProbe != nil {
			probe("startup", c.StartupProbe, "/healthz")
		}
	}
}

// TestGracefulTermination: each pod's grace period covers the binary's own
// drain, so SIGKILL never cuts it short.
func TestGracefulTermination(t *testing.T) {
	m, cfg := loadWithSecret(t)
	for _, d := range m.deployments {
		spec := d.Spec.Template.Spec
		if spec.TerminationGracePeriodSeconds == nil {
			t.Errorf("Deployment/%s: no terminationGracePeriodSeconds", d.Name)
			continue
		}
		grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
		var preStop time.Duration
		if lc := spec.Containers[0].Lifecycle; lc != nil && lc.PreStop != nil && lc.PreStop.Sleep != nil {
			preStop = time.Duration(lc.PreStop.Sleep.Seconds) * time.Second
		}
		need := preStop + serveDrain + cfg.Kafka.WriteTimeout
		if args := spec.Containers[0].Args; slices.Contains(args, "--with-worker=true") || slices.Contains(args, "worker") {
			need += commitTimeout
		}
		if grace < need {
			t.Errorf("Deployment/%s: grace %v < preStop %v + HTTP drain %v + Kafka flush %v (+ worker commit)", d.Name,
				grace, preStop, serveDrain, cfg.Kafka.WriteTimeout)
		}
	}
	// The pod behind the Service waits for endpoints to drop it before it
	// stops listening.
	for _, s := range m.services {
		for _, d := range m.deployments {
			if selects(s.Spec.Selector, d.Spec.Template.Labels) {
				lc := d.Spec.Template.Spec.Containers[0].Lifecycle
				if lc == nil || lc.PreStop == nil || lc.PreStop.Sleep == nil || lc.PreStop.Sleep.Seconds < 3 {
					t.Errorf("Deployment/%s serves Service/%s but has no preStop sleep", d.Name, s.Name)
				}
			}
		}
	}
}

func TestSecurityAndResources(t *testing.T) {
	m := load(t)
	for name, pt := range m.podTemplates() {
		psc := pt.Spec.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
			t.Errorf("%s: pod does not require runAsNonRoot", name)
		}
		if pt.Spec.AutomountServiceAccountToken == nil || *pt.Spec.AutomountServiceAccountToken {
			t.Errorf("%s: mounts a service account token tally never uses", name)
		}
		for _, c := range pt.Spec.Containers {
			sc := c.SecurityContext
			switch {
			case sc == nil:
				t.Errorf("%s/%s: no securityContext", name, c.Name)
				continue
			case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
				t.Errorf("%s/%s: root filesystem is writable", name, c.Name)
			case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
				t.Errorf("%s/%s: privilege escalation allowed", name, c.Name)
			case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL"):
				t.Errorf("%s/%s: capabilities not dropped", name, c.Name)
			}
			if len(c.Command) != 0 {
				t.Errorf("%s/%s: command %v overrides the image's /tally entrypoint", name, c.Name, c.Command)
			}
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, okReq := c.Resources.Requests[r]
				lim, okLim := c.Resources.Limits[r]
				if !okReq || !okLim {
					t.Errorf("%s/%s: %s request and limit both required", name, c.Name, r)
				} else if req.Cmp(lim) > 0 {
					t.Errorf("%s/%s: %s request %s above limit %s", name, c.Name, r, req.String(), lim.String())
				}
			}
		}
	}
}

func selects(sel map[string]string, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestReferences(t *testing.T) {
	m := load(t)
	byComponent := map[string]*appsv1.Deployment{}
	for _, d := range m.deployments {
		if !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) || len(d.Spec.Selector.MatchExpressions) > 0 {
			t.Errorf("Deployment/%s: selector does not match its pod labels", d.Name)
		}
		if d.Spec.Replicas != nil {
			t.Errorf("Deployment/%s sets replicas; its autoscaler owns the count and apply would reset it", d.Name)
		}
		byComponent[d.Spec.Template.Labels["app.kubernetes.io/component"]] = d
	}
	api, worker := byComponent["api"], byComponent["worker"]
	if api == nil || worker == nil {
		t.Fatalf("want an api and a worker Deployment, have %v", byComponent)
	}
	// The Service sends traffic to API pods only.
	for _, s := range m.services {
		if !selects(s.Spec.Selector, api.Spec.Template.Labels) || selects(s.Spec.Selector, worker.Spec.Template.Labels) {
			t.Errorf("Service/%s selects %v: want the API pods and not the workers", s.Name, s.Spec.Selector)
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.String() != api.Spec.Template.Spec.Containers[0].Ports[0].Name {
				t.Errorf("Service/%s targets port %s", s.Name, p.TargetPort.String())
			}
		}
	}
	// Each PodDisruptionBudget covers exactly one Deployment, and both have one.
	covered := map[string]bool{}
	for _, p := range m.pdbs {
		n := 0
		for _, d := range m.deployments {
			if selects(p.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
				covered[d.Name] = true
				n++
			}
		}
		if n != 1 {
			t.Errorf("PodDisruptionBudget/%s selects %d Deployments, want 1", p.Name, n)
		}
		if p.Spec.MaxUnavailable == nil && p.Spec.MinAvailable == nil {
			t.Errorf("PodDisruptionBudget/%s sets neither maxUnavailable nor minAvailable", p.Name)
		}
	}
	for _, d := range m.deployments {
		if !covered[d.Name] {
			t.Errorf("Deployment/%s has no PodDisruptionBudget", d.Name)
		}
	}
	// The HPA scales the API; KEDA scales the worker; nothing scales both.
	for _, h := range m.hpas {
		r := h.Spec.ScaleTargetRef
		if r.Kind != "Deployment" || r.APIVersion != "apps/v1" || r.Name != api.Name {
			t.Errorf("HorizontalPodAutoscaler/%s targets %s %s, want Deployment %s", h.Name, r.Kind, r.Name, api.Name)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 {
			t.Errorf("HorizontalPodAutoscaler/%s: minReplicas below 2 leaves one API pod, and the PDB then blocks every drain", h.Name)
		}
	}
	for _, so := range m.scaled {
		r := so.Spec.ScaleTargetRef
		if m.deployment(r.Name) != worker || (r.Kind != "" && r.Kind != "Deployment") {
			t.Errorf("ScaledObject/%s targets %s %s, want Deployment %s", so.Name, r.Kind, r.Name, worker.Name)
		}
	}
}

// TestScaledObjectMatchesConfig: KEDA watches the group the worker commits
// to, on the topic the API produces to, and never asks for more workers than
// the topic has partitions.
func TestScaledObjectMatchesConfig(t *testing.T) {
	m, cfg := loadWithSecret(t)
	for _, so := range m.scaled {
		for _, tr := range so.Spec.Triggers {
			md := tr.Metadata
			if md["topic"] != cfg.Kafka.VotesTopic {
				t.Errorf("ScaledObject/%s topic %q, TALLY_KAFKA_VOTES_TOPIC %q", so.Name, md["topic"], cfg.Kafka.VotesTopic)
			}
			if md["consumerGroup"] != cfg.Kafka.Group {
				t.Errorf("ScaledObject/%s consumerGroup %q, TALLY_KAFKA_GROUP %q", so.Name, md["consumerGroup"], cfg.Kafka.Group)
			}
			if want := strings.Join(cfg.Kafka.Brokers, ","); md["bootstrapServers"] != want {
				t.Errorf("ScaledObject/%s bootstrapServers %q, TALLY_KAFKA_BROKERS %q", so.Name, md["bootstrapServers"], want)
			}
		}
		minR, maxR := so.Spec.MinReplicaCount, so.Spec.MaxReplicaCount
		if minR == nil || *minR < 1 {
			t.Errorf("ScaledObject/%s may scale to zero; the worker also finalises polls and reconciles", so.Name)
		}
		if maxR == nil || int(*maxR) > cfg.Kafka.VotesPartitions {
			t.Errorf("ScaledObject/%s maxReplicaCount %v exceeds the %d partitions of the votes topic", so.Name, maxR,
				cfg.Kafka.VotesPartitions)
		}
	}
}

// TestGoGCSettings: every Deployment's container sets GOGC and a GOMEMLIMIT
// of 85–90 % of its memory limit (docs/operations.md, "Go GC settings"), so
// raising one without the other is caught here.
func TestGoGCSettings(t *testing.T) {
	m := load(t)
	for _, d := range m.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			lim, ok := c.Resources.Limits[corev1.ResourceMemory]
			if !ok {
				t.Errorf("%s/%s: no memory limit", d.Name, c.Name)
				continue
			}
			if gogc := env["GOGC"]; gogc == "" {
				t.Errorf("%s/%s: GOGC not set", d.Name, c.Name)
			}
			soft, err := goMemLimit(env["GOMEMLIMIT"])
			if err != nil {
				t.Errorf("%s/%s: GOMEMLIMIT %q: %v", d.Name, c.Name, env["GOMEMLIMIT"], err)
				continue
			}
			if share := float64(soft) / float64(lim.Value()); share < 0.85 || share > 0.90 {
				t.Errorf("%s/%s: GOMEMLIMIT %s is %.1f %% of the %s limit, want 85–90 %%", d.Name, c.Name, env["GOMEMLIMIT"], 100*share, lim.String())
			}
		}
	}
}

// goMemLimit reads a GOMEMLIMIT value: a byte count with an optional B,
// KiB, MiB or GiB suffix, as the Go runtime takes it.
func goMemLimit(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = rest, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("not a byte count")
	}
	return n * mult, nil
}
