package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/provlog/provlog/client"
	"github.com/provlog/provlog/policy"
)

func TestWebhookDeadline(t *testing.T) {
	for query, want := range map[string]time.Duration{
		"?timeout=10s": 9500 * time.Millisecond,
		"?timeout=1s":  800 * time.Millisecond,
		"?timeout=30s": 29500 * time.Millisecond,
		"":             9500 * time.Millisecond, // Kubernetes' default, 10 s
		"?timeout=x":   9500 * time.Millisecond,
		"?timeout=-1s": 9500 * time.Millisecond,
	} {
		if got := webhookDeadline(httptest.NewRequest("POST", "/validate"+query, nil)); got != want {
			t.Errorf("webhookDeadline(%q) = %v, want %v", query, got, want)
		}
	}
}

// TestWebhookAnswersBeforeTimeout: a decision that does not come in time
// is a denial answered before the API server's timeout, with the review's
// UID, never a hang or an error status.
func TestWebhookAnswersBeforeTimeout(t *testing.T) {
	release := make(chan struct{})
	hook := func(ctx context.Context) {
		select {
		case <-release:
		case <-time.After(time.Minute):
		}
	}
	testHookAdmit.Store(&hook)
	t.Cleanup(func() { testHookAdmit.Store(nil); close(release) })

	_, vkey, err := note.GenerateKey(rand.Reader, "localhost/provlog")
	if err != nil {
		t.Fatal(err)
	}
	// A log never followed: the hook, not the follower, holds the decision.
	f, err := client.NewFollower(client.FollowerConfig{VerifierKey: vkey, TilesURL: "http://127.0.0.1:1/"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Parse([]byte(`{"namespaces": {"shop": "prod"}}`), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s, err := newGateServer(gateServeConfig{PolicyFile: "policy.json", Policy: p, Follower: f, Logger: slog.New(slog.DiscardHandler)}, reg)
	if err != nil {
		t.Fatal(err)
	}
	h := s.handler(reg)
	review := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"705ab4f5-6393-11e8-b7cc-42010a800002",
	  "kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},
	  "namespace":"shop","operation":"CREATE","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},
	  "spec":{"containers":[{"name":"web","image":"registry.example.com/web@sha256:` + strings.Repeat("ab", 32) + `"}]}}}}`
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("POST", "/validate?timeout=1s", strings.NewReader(review)))
		done <- w
	}()
	var w *httptest.ResponseRecorder
	select {
	case w = <-done:
	case <-time.After(30 * time.Second): // a hang, not a timing assertion
		t.Fatal("the webhook did not answer (it should answer before the 1 s timeout)")
	}
	var got admissionv1.AdmissionReview
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &got) != nil || got.Response == nil {
		t.Fatalf("answer %d %s", w.Code, w.Body)
	}
	r := got.Response
	if r.Allowed || string(r.UID) != "705ab4f5-6393-11e8-b7cc-42010a800002" || r.Result == nil || !strings.Contains(r.Result.Message, "did not decide within the webhook's timeout") {
		t.Errorf("response %+v %+v, want a denial for the timeout with the review's UID", r, r.Result)
	}
}
