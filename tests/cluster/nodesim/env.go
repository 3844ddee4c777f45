package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// configError: a referenced Secret/ConfigMap (or key) is missing. Like kubelet
// (CreateContainerConfigError) the container waits and is retried.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

// procSpec is what to exec for one container.
type procSpec struct {
	path string
	argv []string
	env  []string
}

// ---- image map ----

// imageEntry says how an image runs locally. command/args have the meaning of
// an image's ENTRYPOINT/CMD: a container's command replaces command (and then
// the image's args are dropped), a container's args replace args.
type imageEntry struct {
	Command []string          `json:"command,omitempty"`
	Args    []string          `json:"args,omitempty"`
	Path    []string          `json:"path,omitempty"` // prepended to PATH
	Env     map[string]string `json:"env,omitempty"`
}

type imageMap struct {
	exact    map[string]imageEntry
	prefixes []string // patterns ending in '*', longest first
	byPrefix map[string]imageEntry
}

// loadImageMap reads {"images": {"<image>" | "<prefix>*": entry}} as YAML or JSON.
func loadImageMap(path string) (*imageMap, error) {
	m := &imageMap{exact: map[string]imageEntry{}, byPrefix: map[string]imageEntry{}}
	if path == "" {
		return m, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--image-map: %w", err)
	}
	var file struct {
		Images map[string]imageEntry `json:"images"`
	}
	if err := yaml.UnmarshalStrict(data, &file); err != nil {
		return nil, fmt.Errorf("--image-map %s: %w", path, err)
	}
	for k, v := range file.Images {
		if strings.HasSuffix(k, "*") {
			p := strings.TrimSuffix(k, "*")
			m.byPrefix[p] = v
			m.prefixes = append(m.prefixes, p)
		} else {
			m.exact[k] = v
		}
	}
	sort.Slice(m.prefixes, func(i, j int) bool { return len(m.prefixes[i]) > len(m.prefixes[j]) })
	return m, nil
}

func (m *imageMap) lookup(image string) (imageEntry, bool) {
	if e, ok := m.exact[image]; ok {
		return e, true
	}
	for _, p := range m.prefixes {
		if strings.HasPrefix(image, p) {
			return m.byPrefix[p], true
		}
	}
	return imageEntry{}, false
}

// ---- env ----

type envList struct {
	names []string
	vals  map[string]string
}

func (e *envList) set(k, v string) {
	if e.vals == nil {
		e.vals = map[string]string{}
	}
	if _, ok := e.vals[k]; !ok {
		e.names = append(e.names, k)
	}
	e.vals[k] = v
}

func (e *envList) get(k string) (string, bool) { v, ok := e.vals[k]; return v, ok }

func (e *envList) list() []string {
	out := make([]string, 0, len(e.names))
	for _, k := range e.names {
		out = append(out, k+"="+e.vals[k])
	}
	return out
}

var envNameRE = regexp.MustCompile(`^[^=\x00]+$`)

// prepare resolves a container's argv and environment.
func (s *sim) prepare(pod *v1.Pod, c *v1.Container, work, termFile string) (*procSpec, error) {
	img, _ := s.images.lookup(c.Image)

	var env envList
	if s.cfg.inheritEnv {
		for _, kv := range os.Environ() {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env.set(k, v)
			}
		}
	}
	pathDirs := append([]string{}, img.Path...)
	if p := os.Getenv("PATH"); p != "" {
		pathDirs = append(pathDirs, p)
	} else {
		pathDirs = append(pathDirs, "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	env.set("PATH", strings.Join(pathDirs, ":"))
	env.set("HOME", work)
	host := pod.Spec.Hostname
	if host == "" {
		host = pod.Name
	}
	env.set("HOSTNAME", host)
	if t := os.Getenv("TMPDIR"); t != "" {
		env.set("TMPDIR", t)
	}
	imgKeys := make([]string, 0, len(img.Env))
	for k := range img.Env {
		imgKeys = append(imgKeys, k)
	}
	sort.Strings(imgKeys)
	for _, k := range imgKeys {
		env.set(k, img.Env[k])
	}

	ctx, cancel := context.WithTimeout(s.ctx, 20*time.Second)
	defer cancel()
	objs := objCache{s: s, ctx: ctx, ns: pod.Namespace}

	for _, from := range c.EnvFrom {
		var data map[string]string
		var err error
		switch {
		case from.ConfigMapRef != nil:
			data, err = objs.configMap(from.ConfigMapRef.Name, from.ConfigMapRef.Optional)
		case from.SecretRef != nil:
			data, err = objs.secret(from.SecretRef.Name, from.SecretRef.Optional)
		default:
			return nil, fmt.Errorf("envFrom: unsupported source")
		}
		if err != nil {
			return nil, err
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			name := from.Prefix + k
			if envNameRE.MatchString(name) {
				env.set(name, data[k])
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env.set(e.Name, expand(e.Value, env.get))
			continue
		}
		v, skip, err := s.envValue(pod, c, e, &objs)
		if err != nil {
			return nil, err
		}
		if !skip {
			env.set(e.Name, v)
		}
	}
	env.set(terminationMessageEnv, termFile)

	// argv with Docker semantics against the image map, then $(VAR) expansion.
	var argv []string
	if len(c.Command) > 0 {
		argv = append(append(argv, c.Command...), c.Args...)
	} else {
		argv = append(argv, img.Command...)
		if len(c.Args) > 0 {
			argv = append(argv, c.Args...)
		} else {
			argv = append(argv, img.Args...)
		}
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("container %q (image %q) has no command, and --image-map gives none", c.Name, c.Image)
	}
	for i := range argv {
		argv[i] = expand(argv[i], env.get)
	}
	pathEnv, _ := env.get("PATH")
	path, err := lookPath(argv[0], pathEnv, work)
	if err != nil {
		return nil, err
	}
	return &procSpec{path: path, argv: argv, env: env.list()}, nil
}

func (s *sim) envValue(pod *v1.Pod, c *v1.Container, e v1.EnvVar, objs *objCache) (val string, skip bool, err error) {
	src := e.ValueFrom
	switch {
	case src.FieldRef != nil:
		v, err := fieldValue(pod, src.FieldRef.FieldPath)
		return v, false, err
	case src.SecretKeyRef != nil:
		data, err := objs.secret(src.SecretKeyRef.Name, src.SecretKeyRef.Optional)
		if err != nil || data == nil {
			return "", true, err
		}
		v, ok := data[src.SecretKeyRef.Key]
		if !ok {
			if isOptional(src.SecretKeyRef.Optional) {
				return "", true, nil
			}
			return "", false, &configError{fmt.Sprintf("couldn't find key %s in Secret %s/%s", src.SecretKeyRef.Key, pod.Namespace, src.SecretKeyRef.Name)}
		}
		return v, false, nil
	case src.ConfigMapKeyRef != nil:
		data, err := objs.configMap(src.ConfigMapKeyRef.Name, src.ConfigMapKeyRef.Optional)
		if err != nil || data == nil {
			return "", true, err
		}
		v, ok := data[src.ConfigMapKeyRef.Key]
		if !ok {
			if isOptional(src.ConfigMapKeyRef.Optional) {
				return "", true, nil
			}
			return "", false, &configError{fmt.Sprintf("couldn't find key %s in ConfigMap %s/%s", src.ConfigMapKeyRef.Key, pod.Namespace, src.ConfigMapKeyRef.Name)}
		}
		return v, false, nil
	case src.ResourceFieldRef != nil:
		v, err := resourceValue(pod, c, src.ResourceFieldRef)
		return v, false, err
	}
	return "", false, fmt.Errorf("env %s: unsupported valueFrom source", e.Name)
}

func isOptional(b *bool) bool { return b != nil && *b }

var subscriptRE = regexp.MustCompile(`^metadata\.(labels|annotations)\['(.+)'\]$`)

func fieldValue(pod *v1.Pod, path string) (string, error) {
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs":
		return "127.0.0.1", nil
	}
	if m := subscriptRE.FindStringSubmatch(path); m != nil {
		if m[1] == "labels" {
			return pod.Labels[m[2]], nil
		}
		return pod.Annotations[m[2]], nil
	}
	return "", fmt.Errorf("fieldRef %q is not supported by nodesim", path)
}

// resourceValue mirrors kubelet: a limit that is not set falls back to the
// node's allocatable (nodesim's node: 64 CPUs, 256Gi).
func resourceValue(pod *v1.Pod, c *v1.Container, ref *v1.ResourceFieldSelector) (string, error) {
	target := c
	if ref.ContainerName != "" && ref.ContainerName != c.Name {
		target = nil
		for i := range pod.Spec.Containers {
			if pod.Spec.Containers[i].Name == ref.ContainerName {
				target = &pod.Spec.Containers[i]
			}
		}
		if target == nil {
			return "", fmt.Errorf("resourceFieldRef: no container %q", ref.ContainerName)
		}
	}
	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok {
		return "", fmt.Errorf("resourceFieldRef %q is not supported by nodesim", ref.Resource)
	}
	var q resource.Quantity
	var found bool
	switch kind {
	case "limits":
		q, found = target.Resources.Limits[v1.ResourceName(name)]
		if !found {
			switch name {
			case "cpu":
				q, found = resource.MustParse("64"), true
			case "memory":
				q, found = resource.MustParse("256Gi"), true
			case "ephemeral-storage":
				q, found = resource.MustParse("1Ti"), true
			}
		}
	case "requests":
		q, found = target.Resources.Requests[v1.ResourceName(name)]
		if !found {
			q, found = resource.MustParse("0"), true
		}
	}
	if !found {
		return "", fmt.Errorf("resourceFieldRef %q is not supported by nodesim", ref.Resource)
	}
	div := ref.Divisor
	if div.IsZero() {
		div = resource.MustParse("1")
	}
	if name == "cpu" {
		return fmt.Sprint(int64(math.Ceil(float64(q.MilliValue()) / float64(div.MilliValue())))), nil
	}
	return fmt.Sprint(int64(math.Ceil(float64(q.Value()) / float64(div.Value())))), nil
}

// objCache fetches each Secret/ConfigMap once per container start.
type objCache struct {
	s       *sim
	ctx     context.Context
	ns      string
	secrets map[string]map[string]string
	cms     map[string]map[string]string
}

// secret returns the Secret's data; nil (no error) when it is missing and optional.
func (o *objCache) secret(name string, optional *bool) (map[string]string, error) {
	if d, ok := o.secrets[name]; ok {
		return d, nil
	}
	sec, err := o.s.client.CoreV1().Secrets(o.ns).Get(o.ctx, name, metav1.GetOptions{})
	var data map[string]string
	switch {
	case apierrors.IsNotFound(err):
		if !isOptional(optional) {
			return nil, &configError{fmt.Sprintf("secret %q not found", name)}
		}
	case err != nil:
		return nil, &configError{fmt.Sprintf("getting secret %q: %v", name, err)}
	default:
		data = map[string]string{}
		for k, v := range sec.Data {
			data[k] = string(v)
		}
		for k, v := range sec.StringData {
			data[k] = v
		}
	}
	if o.secrets == nil {
		o.secrets = map[string]map[string]string{}
	}
	o.secrets[name] = data
	return data, nil
}

func (o *objCache) configMap(name string, optional *bool) (map[string]string, error) {
	if d, ok := o.cms[name]; ok {
		return d, nil
	}
	cm, err := o.s.client.CoreV1().ConfigMaps(o.ns).Get(o.ctx, name, metav1.GetOptions{})
	var data map[string]string
	switch {
	case apierrors.IsNotFound(err):
		if !isOptional(optional) {
			return nil, &configError{fmt.Sprintf("configmap %q not found", name)}
		}
	case err != nil:
		return nil, &configError{fmt.Sprintf("getting configmap %q: %v", name, err)}
	default:
		data = map[string]string{}
		for k, v := range cm.Data {
			data[k] = v
		}
	}
	if o.cms == nil {
		o.cms = map[string]map[string]string{}
	}
	o.cms[name] = data
	return data, nil
}

// expand implements Kubernetes' $(VAR) expansion: $(NAME) becomes NAME's
// value if defined (else stays as written), $$ becomes $.
func expand(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// lookPath finds the executable like execvp would with the given PATH.
func lookPath(name, pathEnv, dir string) (string, error) {
	check := func(p string) error {
		full := p
		if !filepath.IsAbs(full) {
			full = filepath.Join(dir, full)
		}
		fi, err := os.Stat(full)
		if err != nil {
			return err
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("%s: permission denied (not an executable file)", p)
		}
		return nil
	}
	if strings.Contains(name, "/") {
		if err := check(name); err != nil {
			return "", fmt.Errorf("exec %q: %v", name, err)
		}
		return name, nil
	}
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, name)
		if check(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH", name)
}
