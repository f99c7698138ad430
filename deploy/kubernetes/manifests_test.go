// Package kubernetes holds no Go code: its test validates the manifests of
// this directory (kubectl apply -k deploy/kubernetes) without a cluster.
// Each document is decoded strictly into the Kubernetes API's own types
// (k8s.io/api: an unknown or misspelt field is an error), the objects are
// checked against each other (selectors, named ports, Services, the drain
// budget), every SHOAL_* variable is checked against the flags the node
// accepts, and a real node is started with the environment a pod gets.
package kubernetes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/shoal-rt/shoal/node/nodetest"
)

// kustomization is the part of kustomize's file these manifests use.
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Labels     []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels"`
	Resources []string `json:"resources"`
	Images    []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

// objects are the decoded documents of a kustomization, by kind and name.
type objects struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	pdbs        map[string]*policyv1.PodDisruptionBudget
}

// load reads dir's kustomization.yaml and decodes every resource it lists,
// plus extra files (examples it does not apply). A YAML file of the
// directory that is neither listed nor extra is an error: it would be
// silently left out of "kubectl apply -k".
func load(t *testing.T, dir string, extra ...string) (kustomization, objects) {
	t.Helper()
	var k kustomization
	decodeStrict(t, filepath.Join(dir, "kustomization.yaml"), mustRead(t, filepath.Join(dir, "kustomization.yaml")), &k)
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("%s: apiVersion %q kind %q", dir, k.APIVersion, k.Kind)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		base := filepath.Base(f)
		if base != "kustomization.yaml" && !slices.Contains(k.Resources, base) && !slices.Contains(extra, base) {
			t.Errorf("%s is not in %s/kustomization.yaml's resources", base, dir)
		}
	}
	objs := objects{map[string]*appsv1.Deployment{}, map[string]*corev1.Service{}, map[string]*corev1.ConfigMap{},
		map[string]*corev1.Secret{}, map[string]*policyv1.PodDisruptionBudget{}}
	for _, f := range append(slices.Clone(k.Resources), extra...) {
		path := filepath.Join(dir, f)
		for i, doc := range splitDocuments(mustRead(t, path)) {
			where := fmt.Sprintf("%s (document %d)", path, i+1)
			var u unstructured.Unstructured
			if err := yaml.Unmarshal(doc, &u.Object); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			name := u.GetName()
			if name == "" {
				t.Errorf("%s: no metadata.name", where)
			}
			switch gvk := u.GroupVersionKind(); gvk.GroupVersion().String() + "/" + gvk.Kind {
			case "apps/v1/Deployment":
				objs.deployments[name] = decodeStrict(t, where, doc, &appsv1.Deployment{})
			case "v1/Service":
				objs.services[name] = decodeStrict(t, where, doc, &corev1.Service{})
			case "v1/ConfigMap":
				objs.configMaps[name] = decodeStrict(t, where, doc, &corev1.ConfigMap{})
			case "v1/Secret":
				objs.secrets[name] = decodeStrict(t, where, doc, &corev1.Secret{})
			case "policy/v1/PodDisruptionBudget":
				objs.pdbs[name] = decodeStrict(t, where, doc, &policyv1.PodDisruptionBudget{})
			default:
				t.Errorf("%s: %s %q: a kind this test does not validate", where, gvk, name)
			}
		}
	}
	return k, objs
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// splitDocuments splits a multi-document YAML file on its "---" lines.
func splitDocuments(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		if strings.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(d, "")) != "" {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

// decodeStrict decodes YAML into v, refusing unknown fields and duplicate
// keys, as the API server's strict field validation does.
func decodeStrict[T any](t *testing.T, where string, doc []byte, v *T) *T {
	t.Helper()
	if err := yaml.UnmarshalStrict(doc, v); err != nil {
		t.Errorf("%s: %v", where, err)
	}
	return v
}

// nodeFlags runs the node's --help and returns its flags with their
// defaults as printed ("" when none). It reads both forms --help has had:
// "  --name type  (env SHOAL_NAME, default 5s)" and Go's flag package's
// "  -name type" with "(default 5s)" ending the usage line.
func nodeFlags(t *testing.T) map[string]string {
	t.Helper()
	out := testenv.Run(t, nodetest.Binary(t), "--help")
	var (
		flagLine   = regexp.MustCompile(`^\s+--?([a-z][a-z0-9-]*)\b`)
		envDefault = regexp.MustCompile(`\(env SHOAL_[A-Z0-9_]+, default ([^)]*)\)\s*$`)
		goDefault  = regexp.MustCompile(`\(default "?([^")\s]*)"?\)\s*$`)
	)
	flags := map[string]string{}
	var last string
	for _, line := range strings.Split(out, "\n") {
		if m := flagLine.FindStringSubmatch(line); m != nil {
			last = m[1]
			flags[last] = ""
		}
		if last == "" {
			continue
		}
		if m := envDefault.FindStringSubmatch(line); m != nil {
			flags[last] = m[1]
		} else if m := goDefault.FindStringSubmatch(line); m != nil && flags[last] == "" {
			flags[last] = m[1]
		}
	}
	if len(flags) < 10 {
		t.Fatalf("--help listed %d flags:\n%s", len(flags), out)
	}
	return flags
}

// envFlag is the flag a SHOAL_* variable sets ("" if the name is not one).
func envFlag(name string) string {
	rest, ok := strings.CutPrefix(name, "SHOAL_")
	if !ok {
		return ""
	}
	return strings.ReplaceAll(strings.ToLower(rest), "_", "-")
}

func selects(t *testing.T, what string, sel map[string]string, pod map[string]string) {
	t.Helper()
	if len(sel) == 0 || !labels.SelectorFromSet(sel).Matches(labels.Set(pod)) {
		t.Errorf("%s selects %v, which does not match the pods' labels %v", what, sel, pod)
	}
}

func containerPort(c corev1.Container, port intstr.IntOrString, proto corev1.Protocol) bool {
	for _, p := range c.Ports {
		pp := p.Protocol
		if pp == "" {
			pp = corev1.ProtocolTCP
		}
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		if pp == proto && ((port.Type == intstr.String && p.Name == port.StrVal) || (port.Type == intstr.Int && p.ContainerPort == port.IntVal)) {
			return true
		}
	}
	return false
}

func TestManifests(t *testing.T) {
	k, objs := load(t, ".", "secret.example.yaml")
	_, backends := load(t, "backends")
	flags := nodeFlags(t)

	dep := objs.deployments["shoal"]
	if dep == nil {
		t.Fatal("no Deployment shoal")
	}
	pod := dep.Spec.Template
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]

	t.Run("Deployment", func(t *testing.T) {
		if dep.Spec.Replicas == nil || *dep.Spec.Replicas < 2 {
			t.Errorf("replicas %v: a cluster needs at least 2", dep.Spec.Replicas)
		}
		selects(t, "the Deployment", dep.Spec.Selector.MatchLabels, pod.Labels)
		if ru := dep.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
			t.Errorf("rolling update must keep every pod until its successor is ready (maxUnavailable 0)")
		}
		// The image is the one kustomization.yaml names.
		if !slices.ContainsFunc(k.Images, func(i struct {
			Name    string `json:"name"`
			NewName string `json:"newName"`
			NewTag  string `json:"newTag"`
		}) bool {
			return i.Name == c.Image
		}) {
			t.Errorf("image %q is not in kustomization.yaml's images", c.Image)
		}
		// Non-root, as the Dockerfile's USER.
		user := regexp.MustCompile(`(?m)^USER (\d+)`).FindSubmatch(mustRead(t, "../../Dockerfile"))
		sc := pod.Spec.SecurityContext
		if user == nil || sc == nil || sc.RunAsUser == nil || strconv.FormatInt(*sc.RunAsUser, 10) != string(user[1]) ||
			sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Errorf("pod securityContext %+v; the Dockerfile runs as USER %s", sc, user)
		}
		if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem ||
			c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
			t.Errorf("container securityContext %+v: want a read-only root and no privilege escalation", c.SecurityContext)
		}
	})

	t.Run("Probes", func(t *testing.T) {
		for _, p := range []struct {
			name  string
			probe *corev1.Probe
			path  string
		}{{"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
			if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path {
				t.Errorf("%s probe %+v, want GET %s", p.name, p.probe, p.path)
				continue
			}
			if !containerPort(c, p.probe.HTTPGet.Port, "") {
				t.Errorf("%s probe port %v is none of the container's", p.name, p.probe.HTTPGet.Port)
			}
		}
	})

	t.Run("Drain", func(t *testing.T) {
		// The grace period covers preStop, then the node's own drain:
		// --drain-delay and --drain-timeout, as configured or by default.
		env := podEnv(t, objs, c, nil)
		dur := func(flag string) time.Duration {
			v, ok := env["SHOAL_"+strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))]
			if !ok {
				v = flags[flag]
			}
			d, err := time.ParseDuration(v)
			if err != nil {
				t.Fatalf("--%s %q: %v", flag, v, err)
			}
			return d
		}
		var preStop time.Duration
		if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds <= 0 {
			t.Errorf("no preStop sleep: the pod would get SIGTERM while the Services still send it requests")
		} else {
			preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		}
		need := preStop + dur("drain-delay") + dur("drain-timeout")
		grace := time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
		if pod.Spec.TerminationGracePeriodSeconds == nil || grace < need+5*time.Second {
			t.Errorf("terminationGracePeriodSeconds %v: preStop + drain delay + drain timeout = %v, plus 5 s to exit", grace, need)
		}
		t.Logf("preStop %v + drain %v + %v = %v of a %v grace period", preStop, dur("drain-delay"), dur("drain-timeout"), need, grace)
	})

	t.Run("Services", func(t *testing.T) {
		svc := objs.services["shoal"]
		if svc == nil {
			t.Fatal("no Service shoal")
		}
		selects(t, "Service shoal", svc.Spec.Selector, pod.Labels)
		if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
			t.Errorf("Service shoal has session affinity: Shoal needs none")
		}
		gossip := objs.services["shoal-gossip"]
		if gossip == nil {
			t.Fatal("no Service shoal-gossip")
		}
		selects(t, "Service shoal-gossip", gossip.Spec.Selector, pod.Labels)
		if gossip.Spec.ClusterIP != corev1.ClusterIPNone || !gossip.Spec.PublishNotReadyAddresses {
			t.Errorf("shoal-gossip: clusterIP %q publishNotReadyAddresses %v: want a headless Service that lists pods not ready yet",
				gossip.Spec.ClusterIP, gossip.Spec.PublishNotReadyAddresses)
		}
		for _, s := range []*corev1.Service{svc, gossip} {
			for _, p := range s.Spec.Ports {
				if !containerPort(c, p.TargetPort, p.Protocol) {
					t.Errorf("Service %s port %s targets %v/%s, none of the container's ports", s.Name, p.Name, p.TargetPort.String(), p.Protocol)
				}
			}
		}
		// --join names the headless Service, on a port it serves over TCP
		// and UDP (memberlist uses both).
		env := podEnv(t, objs, c, nil)
		host, port, err := net.SplitHostPort(env["SHOAL_JOIN"])
		if err != nil || host != gossip.Name {
			t.Errorf("SHOAL_JOIN %q: want %s:<port>", env["SHOAL_JOIN"], gossip.Name)
		}
		for _, proto := range []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP} {
			if !slices.ContainsFunc(gossip.Spec.Ports, func(p corev1.ServicePort) bool {
				return strconv.Itoa(int(p.Port)) == port && p.Protocol == proto
			}) {
				t.Errorf("shoal-gossip has no %s port %s", proto, port)
			}
		}
		if _, gport, _ := net.SplitHostPort(env["SHOAL_GOSSIP_LISTEN"]); gport != port {
			t.Errorf("SHOAL_GOSSIP_LISTEN %q and SHOAL_JOIN %q: different ports", env["SHOAL_GOSSIP_LISTEN"], env["SHOAL_JOIN"])
		}
	})

	t.Run("PodDisruptionBudget", func(t *testing.T) {
		pdb := objs.pdbs["shoal"]
		if pdb == nil {
			t.Fatal("no PodDisruptionBudget shoal")
		}
		selects(t, "the PodDisruptionBudget", pdb.Spec.Selector.MatchLabels, pod.Labels)
		if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
			t.Errorf("maxUnavailable %v, want 1", pdb.Spec.MaxUnavailable)
		}
	})

	t.Run("Config", func(t *testing.T) {
		// Every SHOAL_* variable a pod gets names a flag of the node.
		env := podEnv(t, objs, c, nil)
		for name := range env {
			if f := envFlag(name); f != "" {
				if _, ok := flags[f]; !ok {
					t.Errorf("%s: the node has no --%s", name, f)
				}
			}
		}
		for name := range objs.secrets["shoal-secrets"].StringData {
			if _, ok := flags[envFlag(name)]; !ok {
				t.Errorf("secret.example.yaml's %s: the node has no --%s", name, envFlag(name))
			}
		}
		for _, from := range c.EnvFrom {
			if cm := from.ConfigMapRef; cm != nil && objs.configMaps[cm.Name] == nil {
				t.Errorf("envFrom ConfigMap %q is not among the manifests", cm.Name)
			}
			if s := from.SecretRef; s != nil && (s.Optional == nil || !*s.Optional) {
				t.Errorf("envFrom Secret %q is not optional: the pods would not start before someone creates it", s.Name)
			}
		}
		// SHOAL_CONFIG names the hub config file the ConfigMap volume mounts.
		path, ok := hubConfigPath(objs, c, env)
		if !ok {
			t.Errorf("SHOAL_CONFIG %q is no file of a mounted ConfigMap", env["SHOAL_CONFIG"])
		}
		_ = path
		// The try-out backends are where the config says.
		for _, v := range []string{"SHOAL_REDIS", "SHOAL_NATS"} {
			host := strings.Split(strings.TrimPrefix(strings.SplitN(env[v], "://", 2)[1], "//"), ":")[0]
			if s := backends.services[host]; s == nil {
				t.Errorf("%s %q: backends/ has no Service %q", v, env[v], host)
			} else if d := backends.deployments[host]; d == nil {
				t.Errorf("backends/ has no Deployment %q", host)
			} else {
				selects(t, "backends/ Service "+host, s.Spec.Selector, d.Spec.Template.Labels)
			}
		}
	})

	t.Run("NodeStarts", func(t *testing.T) { testNodeStarts(t, objs, c) })
}

// podEnv is the environment the container gets: its envFrom ConfigMaps
// and Secrets (stringData of secret.example.yaml), then env with $(VAR)
// references expanded, POD_IP 127.0.0.1 and metadata.name "shoal-0".
// override replaces values after expansion.
func podEnv(t *testing.T, objs objects, c corev1.Container, override map[string]string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef != nil {
			if cm := objs.configMaps[from.ConfigMapRef.Name]; cm != nil {
				for k, v := range cm.Data {
					env[k] = v
				}
			}
		}
		if from.SecretRef != nil {
			if s := objs.secrets[from.SecretRef.Name]; s != nil {
				for k, v := range s.StringData {
					env[k] = v
				}
			}
		}
	}
	ref := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	for _, e := range c.Env {
		v := e.Value
		if f := e.ValueFrom; f != nil && f.FieldRef != nil {
			switch f.FieldRef.FieldPath {
			case "status.podIP":
				v = "127.0.0.1"
			case "metadata.name":
				v = "shoal-0"
			default:
				t.Errorf("env %s: fieldRef %s is not simulated here", e.Name, f.FieldRef.FieldPath)
			}
		}
		v = ref.ReplaceAllStringFunc(v, func(m string) string {
			name := ref.FindStringSubmatch(m)[1]
			if _, ok := env[name]; !ok || !slices.ContainsFunc(c.Env, func(x corev1.EnvVar) bool { return x.Name == name }) {
				t.Errorf("env %s refers to $(%s), not defined before it in env", e.Name, name)
			}
			return env[name]
		})
		env[e.Name] = v
	}
	for k, v := range override {
		env[k] = v
	}
	return env
}

// hubConfigPath finds the ConfigMap key SHOAL_CONFIG's file comes from.
func hubConfigPath(objs objects, c corev1.Container, env map[string]string) (content string, ok bool) {
	file := env["SHOAL_CONFIG"]
	for _, m := range c.VolumeMounts {
		key, found := strings.CutPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !found {
			continue
		}
		for _, v := range objs.deployments["shoal"].Spec.Template.Spec.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil {
				if cm := objs.configMaps[v.ConfigMap.Name]; cm != nil {
					content, ok = cm.Data[key]
					return content, ok
				}
			}
		}
	}
	return "", false
}

// testNodeStarts runs a real node with the environment a pod of the
// Deployment gets (the ConfigMap, secret.example.yaml, the pod's env) —
// only the addresses differ: its ports are free ones on loopback, Redis and
// NATS are test servers, the hub config file is the ConfigMap's, and it has
// no peer to join. It must become ready, report its advertised address,
// and take a publish with the example Secret's API key.
func testNodeStarts(t *testing.T, objs objects, c corev1.Container) {
	env := podEnv(t, objs, c, nil)
	hubJSON, ok := hubConfigPath(objs, c, env)
	if !ok {
		t.Fatal("no hub config file")
	}
	cfgFile := testenv.TempFile(t, "hub.json", hubJSON)
	httpAddr := testenv.FreeAddr(t)
	env = podEnv(t, objs, c, map[string]string{
		"SHOAL_LISTEN":         httpAddr,
		"SHOAL_ADVERTISE_HTTP": httpAddr,
		"SHOAL_GOSSIP_LISTEN":  testenv.FreeAddr(t),
		"SHOAL_JOIN":           "",
		"SHOAL_REDIS":          nodetest.Redis(t),
		"SHOAL_NATS":           nodetest.NATS(t),
		"SHOAL_CONFIG":         cfgFile,
	})
	var list []string
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	p := nodetest.StartEnv(t, list, nodetest.Binary(t))
	base := "http://" + httpAddr
	testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if p.Exited() {
			t.Fatalf("the node exited with the pod's environment:\n%s", p.Output())
		}
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s", resp.Status)
		}
		return nil
	})
	var view struct {
		Self    string `json:"self"`
		Members []struct {
			ID       string `json:"id"`
			HTTPAddr string `json:"http_addr"`
		} `json:"members"`
	}
	resp, err := http.Get(base + "/_shoal/cluster")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&view)
	resp.Body.Close()
	if err != nil || view.Self != "shoal-0" || len(view.Members) != 1 || view.Members[0].HTTPAddr != httpAddr {
		t.Errorf("/_shoal/cluster: %+v, %v; want node shoal-0 advertising %s", view, err, httpAddr)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/api/publish", bytes.NewReader([]byte(`{"channel":"news","data":{"n":1}}`)))
	req.Header.Set("Authorization", "apikey "+env["SHOAL_API_KEY"])
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("POST /api/publish with the example Secret's key: %s", resp.Status)
	}
}
