package main

import (
	"os"
	"path/filepath"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "two"}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for in, want := range map[string]string{
		"plain":         "plain",
		"$(A)-$(B)":     "1-two",
		"$(MISSING)":    "$(MISSING)",
		"$$(A)":         "$(A)",
		"cost $5":       "cost $5",
		"$(A":           "$(A",
		"end$":          "end$",
		"x$(A)y$(B)z$$": "x1ytwoz$",
	} {
		if got := expand(in, lookup); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestImageMap(t *testing.T) {
	f := filepath.Join(t.TempDir(), "map.yaml")
	if err := os.WriteFile(f, []byte(`images:
  "ghcr.io/flowrun/*": {command: [generic]}
  "ghcr.io/flowrun/agent*": {command: [agent], path: [/opt/agent]}
  "busybox:1.36": {args: [sh]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := loadImageMap(f)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := m.lookup("ghcr.io/flowrun/agent:v1"); !ok || e.Command[0] != "agent" {
		t.Errorf("longest prefix should win: %+v %v", e, ok)
	}
	if e, ok := m.lookup("ghcr.io/flowrun/other"); !ok || e.Command[0] != "generic" {
		t.Errorf("prefix: %+v %v", e, ok)
	}
	if e, ok := m.lookup("busybox:1.36"); !ok || e.Args[0] != "sh" {
		t.Errorf("exact: %+v %v", e, ok)
	}
	if _, ok := m.lookup("busybox:1.37"); ok {
		t.Errorf("busybox:1.37 must not match an exact entry")
	}
	if err := os.WriteFile(f, []byte("images:\n  x: {comand: [typo]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadImageMap(f); err == nil {
		t.Errorf("unknown fields must be rejected")
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "prog")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "noexec"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err := lookPath("prog", "/nonexistent:"+dir, "/"); err != nil || p != exe {
		t.Errorf("lookPath(prog) = %q, %v", p, err)
	}
	if _, err := lookPath("noexec", dir, "/"); err == nil {
		t.Errorf("a non-executable file must not be found")
	}
	if _, err := lookPath(filepath.Join(dir, "missing"), "", "/"); err == nil {
		t.Errorf("a missing absolute path must fail")
	}
}

func TestFieldAndResourceValues(t *testing.T) {
	pod := &v1.Pod{}
	pod.Name, pod.Namespace, pod.UID = "p", "ns", "u-1"
	pod.Labels = map[string]string{"app": "x"}
	pod.Spec.Containers = []v1.Container{{Name: "c", Resources: v1.ResourceRequirements{
		Limits: v1.ResourceList{v1.ResourceMemory: resource.MustParse("64Mi")},
	}}}
	for path, want := range map[string]string{
		"metadata.name": "p", "metadata.namespace": "ns", "metadata.uid": "u-1",
		"metadata.labels['app']": "x", "status.podIP": "127.0.0.1",
	} {
		if got, err := fieldValue(pod, path); err != nil || got != want {
			t.Errorf("fieldValue(%s) = %q, %v", path, got, err)
		}
	}
	if _, err := fieldValue(pod, "spec.bogus"); err == nil {
		t.Errorf("unsupported fieldRef must fail")
	}
	c := &pod.Spec.Containers[0]
	if v, _ := resourceValue(pod, c, &v1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}); v != "64" {
		t.Errorf("limits.memory in Mi = %s", v)
	}
	if v, _ := resourceValue(pod, c, &v1.ResourceFieldSelector{Resource: "limits.cpu"}); v != "64" {
		t.Errorf("limits.cpu default = %s", v)
	}
}
