package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/provlog/provlog/client"
	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/internal/strictjson"
	"github.com/provlog/provlog/policy"
)

const gateServeLong = `Serve the deploy gate: follow the log and answer deploy decisions over
HTTP, from the gate's own index of every event in the log, never from the
log's search. It reads and verifies every entry against each checkpoint
(signed by the log key, meeting the policy's witness policy, consistent
with the last one: a log that rewinds or forks is refused for good), so an
event the log's search leaves out still counts. It also replays the log's
trust history from those entries (docs/trust.md): a quarantined artifact
is denied in every environment, naming the quarantine entry; events
signed by keys revoked as compromised since no longer count; an event the
log should have refused is left out, named as a reason to deny.

  POST /v1/decide    {"digest": "sha256:...", "environment": "prod"}
                     -> the decision, every reason with its entries, the
                        proven events and the checkpoint they are in.
  POST /validate     a Kubernetes admission.k8s.io/v1 AdmissionReview of a
                     Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet,
                     Job or CronJob: every container's image (init and
                     ephemeral ones too) must be referenced by digest
                     (@sha256:...) and pass the policy for the environment
                     the namespace maps to (the policy's "namespaces").
                     Anything else is denied with a message naming the
                     container or field; the answer is always a valid
                     AdmissionReview, before the request's ?timeout=.
  GET  /metrics      Prometheus metrics.
  GET  /healthz      200 while serving; /readyz 200 once the log is
                     followed.

It fails closed: until the log is followed, while its last poll failed, and
after an inconsistency, every decision is a denial saying why. With
--fail-open, an outage (not an inconsistency) allows instead, and each
such decision is logged as let through unverified. SIGHUP reloads
--policy: a policy that does not parse is refused, naming the field, and
the old one kept (its witnessPolicy cannot change without a restart).

Exit codes: 0 stopped by SIGINT or SIGTERM; 2 bad flags or policy; 3 the
address cannot be listened on.`

// gateServeConfig is what gate serve runs with; the command maps its flags
// onto it.
type gateServeConfig struct {
	PolicyFile string           // the policy, reloaded on SIGHUP. Required.
	Policy     *policy.Policy   // PolicyFile, parsed. Required.
	Follower   *client.Follower // the log, followed by run. Required.
	// FailOpen allows, and logs, decisions that cannot be verified for
	// want of the log (not followed yet, its last poll failed). False:
	// they are denials.
	FailOpen bool
	// CacheSize is the number of decisions kept. If zero, 65536.
	CacheSize int
	// Logger receives the service's logs. Required.
	Logger *slog.Logger
}

// gateServer answers decisions. Its fields are set by newGateServer and
// read-only after, but for policy (swapped by reload) and the cache and
// metrics, which are safe for concurrent use.
type gateServer struct {
	cfg     gateServeConfig
	policy  atomic.Pointer[servedPolicy]
	cache   *lru.Cache[decisionKey, *policy.Decision]
	metrics *gateMetrics
	envs    envLabels
}

// servedPolicy is the policy in force and its generation (1 for the one
// loaded at start, +1 for each reload), which keys the cache.
type servedPolicy struct {
	p   *policy.Policy
	gen uint64
}

// decisionKey is what a cached decision depends on: the same events (the
// log's size: the follower answers every event of the tree) under the same
// policy.
type decisionKey struct {
	digest event.Digest
	env    string
	size   uint64
	gen    uint64
	// trust is the trust history's generation (quarantines,
	// revocations, keyrings applied): the history may move ahead of size.
	trust uint64
}

func newGateServer(cfg gateServeConfig, reg prometheus.Registerer) (*gateServer, error) {
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 1 << 16
	}
	cache, err := lru.New[decisionKey, *policy.Decision](cfg.CacheSize)
	if err != nil {
		return nil, err
	}
	s := &gateServer{cfg: cfg, cache: cache, metrics: newGateMetrics(reg, cfg.Follower)}
	s.policy.Store(&servedPolicy{p: cfg.Policy, gen: 1})
	return s, nil
}

// verdict is a decision as the service answers it.
type verdict struct {
	dec *policy.Decision
	// cp is the checkpoint whose tree holds the events, every event about
	// the digest in it, when the decision rests on the follower's index;
	// nil when it could not (the log not followed).
	cp *client.Checkpoint
	// unverified is set when --fail-open allowed without a verified
	// answer; dec then holds the reason it could not be verified.
	unverified bool
	cached     bool
}

func (v *verdict) allowed() bool { return v.unverified || v.dec.Allowed() }

// decide decides a deployment of digest to env from the follower's index,
// failing closed (or open, with FailOpen, for an outage) when the log is
// not followed.
func (s *gateServer) decide(ctx context.Context, digest event.Digest, env, via string) *verdict {
	start := time.Now()
	v := s.decideUncounted(ctx, digest, env)
	result := "deny"
	switch {
	case v.unverified:
		result = "allow_unverified"
		s.cfg.Logger.Warn("allowed unverified (--fail-open)", "digest", digest.String(), "environment", env, "via", via, "reason", v.dec.Reasons[0].Text)
	case v.dec.Allowed():
		result = "allow"
	}
	s.metrics.decisions.WithLabelValues(result, s.envs.label(env), via).Inc()
	s.metrics.latency.WithLabelValues(via).Observe(time.Since(start).Seconds())
	return v
}

func (s *gateServer) decideUncounted(ctx context.Context, digest event.Digest, env string) *verdict {
	sp := s.policy.Load()
	st := s.cfg.Follower.Status()
	if why := unfollowed(st); why != "" {
		dec := &policy.Decision{Artifact: digest.String(), Environment: env, Reasons: []policy.Reason{{Text: why}}}
		open := s.cfg.FailOpen && !errors.Is(st.Err, client.ErrInconsistent)
		return &verdict{dec: dec, unverified: open}
	}
	evs, cp := s.cfg.Follower.Events(digest)
	tr := s.cfg.Follower.Trust() // nil for a follower without FollowerConfig.Trust
	key := decisionKey{digest: digest, env: env, size: cp.Size, gen: sp.gen}
	if tr != nil {
		key.trust = tr.History.Generation()
	}
	if dec, ok := s.cache.Get(key); ok {
		s.metrics.cache.WithLabelValues("hit").Inc()
		return &verdict{dec: dec, cp: cp, cached: true}
	}
	s.metrics.cache.WithLabelValues("miss").Inc()
	events, refused, opts := provenEvents(evs), []policy.Reason(nil), []policy.DecideOption(nil)
	if tr != nil {
		events, refused, opts, _ = applyTrust(tr, events, trustFromReplay)
	}
	dec := sp.p.Decide(ctx, digest.String(), env, events, opts...)
	dec.Reasons = append(refused, dec.Reasons...)
	s.cache.Add(key, dec)
	return &verdict{dec: dec, cp: cp}
}

// unfollowed says why decisions cannot rest on the log now, or "" if they
// can: it has been followed and its last poll succeeded.
func unfollowed(st client.FollowerStatus) string {
	switch {
	case errors.Is(st.Err, client.ErrInconsistent):
		return fmt.Sprintf("the log is refused: %v", st.Err)
	case st.Checkpoint == nil && st.Err != nil:
		return fmt.Sprintf("the log has not been followed yet: %v", st.Err)
	case st.Checkpoint == nil:
		return "the log has not been followed yet"
	case st.Err != nil:
		return fmt.Sprintf("the log is unreachable or does not verify (followed up to size %d): %v", st.Checkpoint.Size, st.Err)
	}
	return ""
}

// reload replaces the policy with the one in PolicyFile, or keeps the old
// one and says why.
func (s *gateServer) reload() error {
	p, err := loadPolicy(s.cfg.PolicyFile)
	if err != nil {
		return err
	}
	old := s.policy.Load()
	if string(p.Witness) != string(old.p.Witness) {
		return fmt.Errorf("policy %s: witnessPolicy differs from the one the log is followed with; restart to change it", s.cfg.PolicyFile)
	}
	s.policy.Store(&servedPolicy{p: p, gen: old.gen + 1})
	return nil
}

// handler serves the service's endpoints.
func (s *gateServer) handler(reg prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/decide", s.serveDecide)
	mux.HandleFunc("POST /validate", s.serveAdmission)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if why := unfollowed(s.cfg.Follower.Status()); why != "" {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	return mux
}

// maxRequestBody caps a request: an AdmissionReview carries a whole
// object (the API server's own cap on a request is 3 MiB).
const maxRequestBody = 4 << 20

// decideRequest is the body of POST /v1/decide.
type decideRequest struct {
	Digest      string `json:"digest"`
	Environment string `json:"environment"`
}

// reasonJSON is a reason to deny and the log indices of the events it is
// about (none for a missing event).
type reasonJSON struct {
	Text    string   `json:"text"`
	Entries []uint64 `json:"entries"`
}

// decideResponse is the answer of POST /v1/decide.
type decideResponse struct {
	Decision    string       `json:"decision"` // "allow" or "deny"
	Artifact    string       `json:"artifact"`
	Environment string       `json:"environment"`
	Reasons     []reasonJSON `json:"reasons"`
	Events      []eventJSON  `json:"events"`
	// Checkpoint is the signed checkpoint whose tree holds every event,
	// and every event about the artifact in it; absent if the log is not
	// followed.
	Checkpoint string `json:"checkpoint,omitempty"`
	// Completeness says where the assurance that no event was left out
	// comes from.
	Completeness string `json:"completeness"`
	// Unverified is true when --fail-open allowed without the log.
	Unverified bool `json:"unverified,omitempty"`
	Cached     bool `json:"cached"`
}

func (s *gateServer) serveDecide(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": err.Error()})
		return
	}
	var req decideRequest
	if err := strictjson.Decode(raw, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "request: " + err.Error()})
		return
	}
	d, err := event.ParseDigest(req.Digest)
	switch {
	case err != nil:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	case req.Environment == "":
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "environment: empty"})
		return
	}
	v := s.decide(r.Context(), d, req.Environment, "api")
	out := decideResponse{Decision: "deny", Artifact: v.dec.Artifact, Environment: req.Environment,
		Reasons: []reasonJSON{}, Events: []eventJSON{},
		Completeness: "none: the log is not followed", Unverified: v.unverified, Cached: v.cached}
	if v.allowed() {
		out.Decision = "allow"
	}
	for _, r := range v.dec.Reasons {
		out.Reasons = append(out.Reasons, reasonJSON{Text: r.Text, Entries: append([]uint64{}, r.Entries...)})
	}
	for _, e := range v.dec.Events {
		out.Events = append(out.Events, (&parsedEvent{Index: e.Index, Env: e.Envelope, Event: e.Event}).json())
	}
	if v.cp != nil {
		out.Checkpoint = string(v.cp.Raw)
		out.Completeness = replayCompleteness(v.cp)
	}
	writeJSON(w, http.StatusOK, out)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// defaultWebhookTimeout is Kubernetes' default timeoutSeconds of a
// webhook, used when the request does not say its own.
const defaultWebhookTimeout = 10 * time.Second

// webhookDeadline is how long before the API server's timeout the
// service answers, to leave the answer time to travel.
func webhookDeadline(r *http.Request) time.Duration {
	// The API server calls the webhook's URL with "?timeout=<duration>",
	// the webhook configuration's timeoutSeconds (k8s.io/apiserver
	// pkg/admission/plugin/webhook/request: the client sets it with
	// rest.Request.Timeout).
	t, err := time.ParseDuration(r.URL.Query().Get("timeout"))
	if err != nil || t <= 0 {
		t = defaultWebhookTimeout
	}
	return t - min(t/5, 500*time.Millisecond)
}

func (s *gateServer) serveAdmission(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), webhookDeadline(r))
	defer cancel()
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	var review admissionv1.AdmissionReview
	if err == nil {
		err = json.Unmarshal(raw, &review)
	}
	done := make(chan *admissionv1.AdmissionResponse, 1)
	go func() {
		if hook := testHookAdmit.Load(); hook != nil {
			(*hook)(ctx)
		}
		if err != nil {
			done <- denied(fmt.Sprintf("the request is not an AdmissionReview: %v", err))
			return
		}
		done <- s.admit(ctx, &review)
	}()
	var resp *admissionv1.AdmissionResponse
	select {
	case resp = <-done:
	case <-ctx.Done():
		resp = denied("the gate did not decide within the webhook's timeout")
		s.cfg.Logger.Warn("admission undecided within the webhook's timeout")
	}
	if review.Request != nil {
		resp.UID = review.Request.UID
	}
	writeJSON(w, http.StatusOK, admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Response: resp,
	})
}

// testHookAdmit, if set (by tests), runs before each admission decision:
// a test makes it block to exercise the webhook's timeout.
var testHookAdmit atomic.Pointer[func(ctx context.Context)]

// denied is a refusal with message; the UID is the caller's to set.
func denied(message string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusForbidden, Reason: metav1.StatusReasonForbidden, Message: "provlog gate: " + message}}
}

// admit decides an AdmissionReview's request.
func (s *gateServer) admit(ctx context.Context, review *admissionv1.AdmissionReview) *admissionv1.AdmissionResponse {
	req := review.Request
	switch {
	case review.APIVersion != "admission.k8s.io/v1" || review.Kind != "AdmissionReview":
		return denied(fmt.Sprintf("apiVersion %q kind %q, want admission.k8s.io/v1 AdmissionReview", review.APIVersion, review.Kind))
	case req == nil:
		return denied("the AdmissionReview has no request")
	case req.Operation != admissionv1.Create && req.Operation != admissionv1.Update:
		return &admissionv1.AdmissionResponse{Allowed: true, Result: &metav1.Status{Message: fmt.Sprintf("provlog gate: %s deploys nothing", req.Operation)}}
	}
	what := fmt.Sprintf("%s %s/%s", req.Kind.Kind, req.Namespace, req.Name)
	containers, err := podContainers(req.Kind, req.Object.Raw)
	if err != nil {
		return denied(fmt.Sprintf("%s: %v", what, err))
	}
	env, ok := s.policy.Load().p.EnvironmentOf(req.Namespace)
	if !ok {
		return denied(fmt.Sprintf("%s: namespace %q is not mapped to an environment by the policy's namespaces", what, req.Namespace))
	}
	var refusals []string
	for _, c := range containers {
		d, err := imageDigest(c.image)
		if err != nil {
			refusals = append(refusals, fmt.Sprintf("container %q (%s): %v", c.name, c.field, err))
			continue
		}
		v := s.decide(ctx, d, env, "admission")
		if !v.allowed() {
			var rs []string
			for _, r := range v.dec.Reasons {
				rs = append(rs, r.Text)
			}
			refusals = append(refusals, fmt.Sprintf("container %q (%s): image %s denied for %s: %s", c.name, c.field, c.image, env, strings.Join(rs, "; ")))
		}
		if ctx.Err() != nil {
			return denied("the gate did not decide within the webhook's timeout")
		}
	}
	if len(refusals) > 0 {
		return denied(fmt.Sprintf("%s: %s", what, strings.Join(refusals, "; ")))
	}
	return &admissionv1.AdmissionResponse{Allowed: true}
}

// container is one container of a pod template: its name, image and the
// field it is at.
type container struct {
	name, image, field string
}

// podContainers returns every container (init and ephemeral too) of the
// object of kind, or an error naming what is wrong.
func podContainers(kind metav1.GroupVersionKind, raw []byte) ([]container, error) {
	if len(raw) == 0 {
		return nil, errors.New("request.object: empty")
	}
	var spec *corev1.PodSpec
	var path string
	decode := func(v any) error {
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("request.object: not a %s: %w", kind.Kind, err)
		}
		return nil
	}
	switch kind.Group + "/" + kind.Kind {
	case "/Pod":
		var o corev1.Pod
		if err := decode(&o); err != nil {
			return nil, err
		}
		spec, path = &o.Spec, "spec"
	case "apps/Deployment":
		var o appsv1.Deployment
		if err := decode(&o); err != nil {
			return nil, err
		}
		spec, path = &o.Spec.Template.Spec, "spec.template.spec"
	case "apps/StatefulSet":
		var o appsv1.StatefulSet
		if err := decode(&o); err != nil {
			return nil, err
		}
		spec, path = &o.Spec.Template.Spec, "spec.template.spec"
	case "apps/DaemonSet":
		var o appsv1.DaemonSet
		if err := decode(&o); err != nil {
			return nil, err
		}
		spec, path = &o.Spec.Template.Spec, "spec.template.spec"
	case "apps/ReplicaSet":
		var o appsv1.ReplicaSet
		if err := decode(&o); err != nil {
			return nil, err
		}
		spec, path = &o.Spec.Template.Spec, "spec.template.spec"
	case "batch/Job":
		var o batchv1.Job
		if err := decode(&o); err != nil {
			return nil, err
		}
		spec, path = &o.Spec.Template.Spec, "spec.template.spec"
	case "batch/CronJob":
		var o batchv1.CronJob
		if err := decode(&o); err != nil {
			return nil, err
		}
		spec, path = &o.Spec.JobTemplate.Spec.Template.Spec, "spec.jobTemplate.spec.template.spec"
	default:
		return nil, fmt.Errorf("request.kind: %s is not a kind the gate admits (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob)", groupKind(kind))
	}
	var out []container
	for i, c := range spec.InitContainers {
		out = append(out, container{c.Name, c.Image, fmt.Sprintf("%s.initContainers[%d]", path, i)})
	}
	for i, c := range spec.Containers {
		out = append(out, container{c.Name, c.Image, fmt.Sprintf("%s.containers[%d]", path, i)})
	}
	for i, c := range spec.EphemeralContainers {
		out = append(out, container{c.Name, c.Image, fmt.Sprintf("%s.ephemeralContainers[%d]", path, i)})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no containers", path)
	}
	return out, nil
}

func groupKind(k metav1.GroupVersionKind) string {
	if k.Group == "" {
		return k.Version + "/" + k.Kind
	}
	return k.Group + "/" + k.Version + "/" + k.Kind
}

var imageDigestRE = regexp.MustCompile(`@(sha256:[0-9a-f]{64})$`)

// imageDigest returns the digest an image reference pins
// ("registry/name[:tag]@sha256:<64 hex>"), or an error for a reference by
// tag alone.
func imageDigest(image string) (event.Digest, error) {
	m := imageDigestRE.FindStringSubmatch(image)
	if m == nil {
		return event.Digest{}, fmt.Errorf("image %q is not referenced by digest (@sha256:<64 hex digits>)", image)
	}
	return event.ParseDigest(m[1])
}

// envLabels bounds the environment label of the metrics: the first
// maxEnvLabels environments asked about, then "other" (the JSON API takes
// any environment name).
type envLabels struct {
	mu   sync.Mutex
	seen map[string]bool
}

const maxEnvLabels = 32

func (l *envLabels) label(env string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string]bool{}
	}
	if !l.seen[env] && len(l.seen) >= maxEnvLabels {
		return "other"
	}
	l.seen[env] = true
	return env
}

// gateMetrics are the service's metrics.
type gateMetrics struct {
	decisions *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	cache     *prometheus.CounterVec
}

func newGateMetrics(reg prometheus.Registerer, f *client.Follower) *gateMetrics {
	m := &gateMetrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "provlog_gate_decisions_total",
			Help: "Decisions, by result (allow, deny, allow_unverified), environment and how they were asked (api, admission)."},
			[]string{"result", "environment", "via"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "provlog_gate_decision_seconds",
			Help: "Time to decide one digest for one environment.", Buckets: prometheus.ExponentialBuckets(1e-5, 4, 12)},
			[]string{"via"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "provlog_gate_cache_lookups_total",
			Help: "Decision cache lookups, by result (hit, miss)."}, []string{"result"}),
	}
	followed := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "provlog_gate_log_size",
		Help: "The size of the latest checkpoint followed (0 before the first)."}, func() float64 {
		if cp := f.Status().Checkpoint; cp != nil {
			return float64(cp.Size)
		}
		return 0
	})
	events := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "provlog_gate_indexed_events",
		Help: "Events in the gate's index."}, func() float64 { return float64(f.Status().Events) })
	reg.MustRegister(m.decisions, m.latency, m.cache, followed, events)
	return m
}

func newGateServeCmd(g *globals) *cobra.Command {
	var (
		cfg                 gateServeConfig
		listen, certF, keyF string
		evidence            string
		interval            time.Duration
	)
	cmd := &cobra.Command{
		Use:   "serve --policy FILE --listen ADDR [--tls-cert FILE --tls-key FILE] [--fail-open] [--interval D]",
		Short: "Serve the deploy gate (JSON API and Kubernetes admission webhook) from its own replay of the log",
		Long:  gateServeLong,
		Example: `  provlog gate serve --policy deploy-policy.json --listen :8443 --tls-cert tls.crt --tls-key tls.key --tiles https://log.example.com/
  curl -s localhost:8443/v1/decide -d '{"digest": "sha256:9f86d0...", "environment": "prod"}'`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			if cfg.PolicyFile == "" || listen == "" {
				return usageErr("--policy and --listen are required")
			}
			if (certF == "") != (keyF == "") {
				return usageErr("--tls-cert and --tls-key go together")
			}
			var err error
			if cfg.Policy, err = loadPolicy(cfg.PolicyFile); err != nil {
				return err
			}
			var tlsCfg *tls.Config
			if certF != "" {
				cert, err := tls.LoadX509KeyPair(certF, keyF)
				if err != nil {
					return usageErr("--tls-cert, --tls-key: %w", err)
				}
				tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
			}
			vkey, err := g.verifierKey()
			if err != nil {
				return err
			}
			fcfg := client.FollowerConfig{VerifierKey: vkey, WitnessPolicy: cfg.Policy.Witness, EvidenceDir: evidence, Interval: interval, Trust: true}
			if u, asked := g.tilesURL(); asked {
				fcfg.TilesURL = u
			} else {
				c, err := g.dial(cmd.Context())
				if err != nil {
					return err
				}
				defer c.Close()
				fcfg.Client = c
			}
			if cfg.Follower, err = client.NewFollower(fcfg); err != nil {
				return asUsage(err)
			}
			cfg.Logger = slog.New(slog.NewTextHandler(g.stderr, nil))
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("--listen %s: %w", listen, err)
			}
			reg := prometheus.NewRegistry()
			s, err := newGateServer(cfg, reg)
			if err != nil {
				ln.Close()
				return err
			}
			scheme := "http"
			if tlsCfg != nil {
				scheme = "https"
			}
			fmt.Fprintf(g.stdout, "gate serve: listening on %s://%s\n", scheme, ln.Addr())
			return s.run(cmd.Context(), ln, tlsCfg, reg)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg.PolicyFile, "policy", "", "policy `file`, JSON (required; see provlog gate --help), reloaded on SIGHUP")
	fl.StringVar(&listen, "listen", "", "`address` to serve on, host:port (required)")
	fl.StringVar(&certF, "tls-cert", "", "TLS certificate chain `file` (PEM); a webhook must be served over TLS")
	fl.StringVar(&keyF, "tls-key", "", "TLS private key `file` (PEM)")
	fl.BoolVar(&cfg.FailOpen, "fail-open", false, "allow, and log, decisions the log cannot verify because it is unreachable or not followed yet (never a forked log)")
	fl.DurationVar(&interval, "interval", 10*time.Second, "time between polls of the log")
	fl.StringVar(&evidence, "evidence", "", "`directory` for fork evidence (default: not written, only logged)")
	return cmd
}

// run follows the log and serves on ln until ctx ends, reloading the
// policy on SIGHUP.
func (s *gateServer) run(ctx context.Context, ln net.Listener, tlsCfg *tls.Config, reg *prometheus.Registry) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv := &http.Server{Handler: s.handler(reg), TLSConfig: tlsCfg,
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn)}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := s.cfg.Follower.Run(ctx); errors.Is(err, client.ErrInconsistent) {
			s.cfg.Logger.Error("the log is refused: every decision is a denial until restarted with a log that does not contradict itself", "err", err)
		}
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := s.reload(); err != nil {
					s.cfg.Logger.Error("policy reload refused, the old policy kept", "err", err)
				} else {
					s.cfg.Logger.Info("policy reloaded", "file", s.cfg.PolicyFile, "generation", s.policy.Load().gen)
				}
			}
		}
	}()
	errc := make(chan error, 1)
	go func() {
		if tlsCfg != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancelShut := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelShut()
	srv.Shutdown(shut)
	return nil
}
