package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

const (
	terminationMessageEnv = "FLOWRUN_TERMINATION_MESSAGE_PATH"
	maxMessageBytes       = 4096
	fallbackLogBytes      = 2048
	fallbackLogLines      = 80
	configRetry           = 2 * time.Second
)

// spawnCh runs exec.Cmd.Start on one OS thread that never exits, so that
// Pdeathsig (tied by Linux to the creating thread, not the process) fires only
// when the simulator itself dies.
var spawnCh = make(chan func())

func spawner() {
	runtime.LockOSThread()
	for f := range spawnCh {
		f()
	}
}

func startCmd(cmd *exec.Cmd) error {
	done := make(chan error, 1)
	spawnCh <- func() { done <- cmd.Start() }
	return <-done
}

// podRun is one pod this simulator runs: its containers, one after another
// (init containers in order, then the first regular container).
type podRun struct {
	s    *sim
	pod  *v1.Pod // as first seen; spec is (mostly) immutable
	uid  types.UID
	dir  string // <state-dir>/pods/<ns>_<name>_<uid>
	work string // the processes' working directory

	mu         sync.Mutex
	deleteCh   chan struct{} // closed when the pod got a deletionTimestamp
	grace      time.Duration
	killCh     chan struct{} // closed on killNow
	deleteOnce sync.Once
	killOnce   sync.Once
	pgid       int // process group of the running process, 0 if none

	startTime  metav1.Time
	initStatus []v1.ContainerStatus
	status     []v1.ContainerStatus
}

func newPodRun(s *sim, pod *v1.Pod) *podRun {
	dir := filepath.Join(s.cfg.stateDir, "pods", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID))
	pod = pod.DeepCopy()
	pod.Spec.NodeName = s.cfg.nodeName // it was just bound here, or already was
	return &podRun{
		s: s, pod: pod, uid: pod.UID, dir: dir, work: filepath.Join(dir, "work"),
		deleteCh: make(chan struct{}), killCh: make(chan struct{}),
	}
}

func (r *podRun) logf(format string, args ...any) {
	log.Printf("pod %s/%s (%s): %s", r.pod.Namespace, r.pod.Name, r.uid, fmt.Sprintf(format, args...))
}

func (r *podRun) requestDelete(grace time.Duration) {
	r.deleteOnce.Do(func() {
		r.mu.Lock()
		r.grace = grace
		r.mu.Unlock()
		close(r.deleteCh)
	})
}

func (r *podRun) killNow() {
	r.killOnce.Do(func() {
		close(r.killCh)
		r.mu.Lock()
		if r.pgid > 0 {
			_ = syscall.Kill(-r.pgid, syscall.SIGKILL)
		}
		r.mu.Unlock()
	})
}

func (r *podRun) deleting() bool {
	select {
	case <-r.deleteCh:
		return true
	default:
		return false
	}
}

func (r *podRun) killed() bool {
	select {
	case <-r.killCh:
		return true
	default:
		return false
	}
}

// sleep waits d, or until the pod is deleted or killed; it reports whether the
// full time passed.
func (r *podRun) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.deleteCh:
		return false
	case <-r.killCh:
		return false
	}
}

// result of one container run.
type result struct {
	exitCode   int32
	reason     string
	message    string
	startedAt  metav1.Time
	finishedAt metav1.Time
	id         string
}

func (r *podRun) run() {
	if err := os.MkdirAll(r.work, 0o755); err != nil {
		r.logf("creating %s: %v", r.work, err)
	}
	r.startTime = metav1.Now()
	pod := r.pod
	for _, c := range pod.Spec.InitContainers {
		r.initStatus = append(r.initStatus, waitingStatus(c, "PodInitializing", ""))
	}
	waitReason := "ContainerCreating"
	if len(pod.Spec.InitContainers) > 0 {
		waitReason = "PodInitializing"
	}
	for _, c := range pod.Spec.Containers {
		r.status = append(r.status, waitingStatus(c, waitReason, ""))
	}
	r.push(v1.PodPending, false)

	failed := false
	// Init containers, in order; each must succeed.
	for i := range pod.Spec.InitContainers {
		if !r.runContainer(&pod.Spec.InitContainers[i], &r.initStatus[i], true) {
			failed = true
			break
		}
	}
	if !failed && !r.killed() && !r.deleting() {
		for i := range r.status[1:] {
			// Only the first container runs; the others are reported
			// running alongside it (see docs/control-plane.md).
			r.status[i+1] = runningStatus(pod.Spec.Containers[i+1], metav1.Now(), "")
		}
		failed = !r.runContainer(&pod.Spec.Containers[0], &r.status[0], false)
	}
	if r.killed() {
		return // simulator shutdown or pod gone: nothing to report
	}
	now := metav1.Now()
	for i := range r.status {
		st := &r.status[i]
		if st.State.Terminated == nil {
			var startedAt metav1.Time
			exit, reason := int32(0), "Completed"
			if st.State.Running != nil {
				startedAt = st.State.Running.StartedAt
				if i == 0 || failed {
					exit, reason = 137, "Error"
				}
			} else {
				exit, reason = 0, "ContainerStatusUnknown"
				if failed || r.deleting() {
					exit = 137
				}
			}
			st.State = v1.ContainerState{Terminated: &v1.ContainerStateTerminated{
				ExitCode: exit, Reason: reason, StartedAt: startedAt, FinishedAt: now, ContainerID: st.ContainerID,
			}}
			st.Ready = false
			f := false
			st.Started = &f
		}
		if st.State.Terminated.ExitCode != 0 {
			failed = true
		}
	}
	phase := v1.PodSucceeded
	if failed {
		phase = v1.PodFailed
	}
	r.push(phase, false)
	r.logf("finished: %s", phase)
	if r.deleting() {
		_ = r.s.deletePod(&v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: r.uid}})
	}
}

// runContainer runs c until it ends for good under the pod's restart policy,
// updating *st. It reports whether the container finally succeeded.
func (r *podRun) runContainer(c *v1.Container, st *v1.ContainerStatus, isInit bool) bool {
	policy := r.pod.Spec.RestartPolicy
	backoff := r.s.cfg.restartBackoff
	for {
		if r.deleting() || r.killed() {
			return false
		}
		res, ok := r.runOnce(c, st, isInit)
		if !ok {
			return false // deleted or killed before it could start
		}
		term := &v1.ContainerStateTerminated{
			ExitCode: res.exitCode, Reason: res.reason, Message: res.message,
			StartedAt: res.startedAt, FinishedAt: res.finishedAt, ContainerID: res.id,
		}
		st.State = v1.ContainerState{Terminated: term}
		st.Ready = false
		f := false
		st.Started = &f
		r.logf("container %s exited: code %d, reason %s", c.Name, res.exitCode, res.reason)
		restart := policy == v1.RestartPolicyAlways && !isInit ||
			(policy == v1.RestartPolicyOnFailure || policy == v1.RestartPolicyAlways) && res.exitCode != 0
		if !restart || r.deleting() || r.killed() {
			return res.exitCode == 0
		}
		// CrashLoopBackOff, with a short test-friendly backoff.
		st.LastTerminationState = v1.ContainerState{Terminated: term}
		st.State = v1.ContainerState{Waiting: &v1.ContainerStateWaiting{
			Reason: "CrashLoopBackOff", Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", backoff, c.Name, r.pod.Name, r.pod.Namespace, r.uid),
		}}
		r.push(v1.PodRunning, false)
		if !r.sleep(backoff) {
			return false
		}
		st.RestartCount++
		if backoff *= 2; backoff > r.s.cfg.maxBackoff {
			backoff = r.s.cfg.maxBackoff
		}
	}
}

// runOnce starts c once and waits for it. ok is false when the pod was deleted
// or killed before the process started.
func (r *podRun) runOnce(c *v1.Container, st *v1.ContainerStatus, isInit bool) (res result, ok bool) {
	termFile := filepath.Join(r.dir, c.Name+".termination-log")
	logFile := filepath.Join(r.dir, c.Name+".log")
	var spec *procSpec
	for {
		var err error
		spec, err = r.s.prepare(r.pod, c, r.work, termFile)
		var cfgErr *configError
		if errors.As(err, &cfgErr) {
			// Like kubelet: wait (Pending) until the Secret/ConfigMap exists.
			if st.State.Waiting == nil || st.State.Waiting.Message != cfgErr.Error() {
				r.logf("container %s: %v", c.Name, cfgErr)
				st.State = v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: cfgErr.Error()}}
				r.push(r.currentPhase(), false)
			}
			if !r.sleep(configRetry) {
				return res, false
			}
			continue
		}
		if err != nil {
			now := metav1.Now()
			r.logf("container %s cannot start: %v", c.Name, err)
			return result{exitCode: 128, reason: "StartError", message: truncate(err.Error()), startedAt: now, finishedAt: now}, true
		}
		break
	}
	if r.deleting() || r.killed() {
		return res, false
	}

	_ = os.WriteFile(termFile, nil, 0o666)
	_ = os.Chmod(termFile, 0o666)
	out, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		now := metav1.Now()
		return result{exitCode: 128, reason: "StartError", message: truncate("opening log file: " + err.Error()), startedAt: now, finishedAt: now}, true
	}
	defer out.Close()
	r.linkLog(c.Name, logFile, isInit)

	cmd := &exec.Cmd{
		Path: spec.path, Args: spec.argv, Env: spec.env, Dir: r.work,
		Stdout: out, Stderr: out,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	}
	r.mu.Lock()
	if r.killed() {
		r.mu.Unlock()
		return res, false
	}
	err = startCmd(cmd)
	if err == nil {
		r.pgid = cmd.Process.Pid
	}
	r.mu.Unlock()
	started := metav1.Now()
	if err != nil {
		r.logf("container %s cannot start: %v", c.Name, err)
		return result{exitCode: 128, reason: "StartError", message: truncate(err.Error()), startedAt: started, finishedAt: started}, true
	}
	pid := cmd.Process.Pid
	id := fmt.Sprintf("nodesim://%d", pid)
	_ = os.WriteFile(filepath.Join(r.dir, c.Name+".pid"), []byte(strconv.Itoa(pid)+"\n"), 0o644)
	r.logf("container %s started: pid %d: %q", c.Name, pid, spec.argv)

	restarts, last := st.RestartCount, st.LastTerminationState
	*st = runningStatus(*c, started, id)
	st.RestartCount, st.LastTerminationState = restarts, last
	r.push(v1.PodRunning, !isInit)

	waitCh := make(chan error, 1)
	go func() { waitCh <- cmd.Wait() }()
	var waitErr error
	select {
	case waitErr = <-waitCh:
	case <-r.killCh:
		waitErr = <-waitCh
	case <-r.deleteCh:
		r.mu.Lock()
		grace := r.grace
		r.mu.Unlock()
		r.logf("container %s: pod deleted; SIGTERM to process group %d, SIGKILL after %s", c.Name, pid, grace)
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		t := time.NewTimer(grace)
		select {
		case waitErr = <-waitCh:
		case <-t.C:
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			waitErr = <-waitCh
		}
		t.Stop()
	}
	finished := metav1.Now()
	// The container is gone when its main process is: kill what it left behind.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	r.mu.Lock()
	r.pgid = 0
	r.mu.Unlock()

	res = result{startedAt: started, finishedAt: finished, id: id}
	res.exitCode = exitCode(cmd.ProcessState, waitErr)
	res.reason = "Completed"
	if res.exitCode != 0 {
		res.reason = "Error"
	}
	res.message = readMessage(termFile)
	if res.message == "" && res.exitCode != 0 && c.TerminationMessagePolicy == v1.TerminationMessageFallbackToLogsOnError {
		res.message = tailLog(logFile)
	}
	return res, true
}

func (r *podRun) linkLog(container, target string, isInit bool) {
	dir := filepath.Join(r.s.cfg.stateDir, "logs")
	links := []string{fmt.Sprintf("%s_%s_%s.log", r.pod.Namespace, r.pod.Name, container)}
	if !isInit && container == r.pod.Spec.Containers[0].Name {
		links = append(links, fmt.Sprintf("%s_%s.log", r.pod.Namespace, r.pod.Name))
	}
	for _, l := range links {
		p := filepath.Join(dir, l)
		_ = os.Remove(p)
		_ = os.Symlink(target, p)
	}
}

func exitCode(ps *os.ProcessState, err error) int32 {
	if ps == nil {
		if err != nil {
			return 128
		}
		return 0
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int32(ws.Signal())
	}
	return int32(ps.ExitCode())
}

func truncate(s string) string {
	if len(s) > maxMessageBytes {
		return s[:maxMessageBytes]
	}
	return s
}

func readMessage(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	buf := make([]byte, maxMessageBytes)
	n, _ := io.ReadFull(f, buf)
	return string(buf[:n])
}

func tailLog(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	data = bytes.TrimRight(data, "\n")
	lines := bytes.Split(data, []byte("\n"))
	if len(lines) > fallbackLogLines {
		lines = lines[len(lines)-fallbackLogLines:]
	}
	out := bytes.Join(lines, []byte("\n"))
	if len(out) > fallbackLogBytes {
		out = out[len(out)-fallbackLogBytes:]
	}
	return string(out)
}

func waitingStatus(c v1.Container, reason, message string) v1.ContainerStatus {
	f := false
	return v1.ContainerStatus{
		Name: c.Name, Image: c.Image, ImageID: "nodesim://" + c.Image, Started: &f,
		State: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: reason, Message: message}},
	}
}

func runningStatus(c v1.Container, at metav1.Time, id string) v1.ContainerStatus {
	t := true
	return v1.ContainerStatus{
		Name: c.Name, Image: c.Image, ImageID: "nodesim://" + c.Image, ContainerID: id,
		Ready: true, Started: &t,
		State: v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: at}},
	}
}

func (r *podRun) currentPhase() v1.PodPhase {
	for _, st := range append(append([]v1.ContainerStatus{}, r.initStatus...), r.status...) {
		if st.State.Running != nil || st.State.Terminated != nil || st.LastTerminationState.Terminated != nil {
			if len(r.initStatus) > 0 && !allInitDone(r.initStatus) {
				return v1.PodPending
			}
			return v1.PodRunning
		}
	}
	return v1.PodPending
}

func allInitDone(sts []v1.ContainerStatus) bool {
	for _, st := range sts {
		if st.State.Terminated == nil || st.State.Terminated.ExitCode != 0 {
			return false
		}
	}
	return true
}

// push writes the run's view of the pod status.
func (r *podRun) push(phase v1.PodPhase, mainRunning bool) {
	if r.killed() {
		return
	}
	initDone := allInitDone(r.initStatus)
	if phase == v1.PodRunning && !initDone {
		phase = v1.PodPending
	}
	ready := mainRunning && phase == v1.PodRunning
	if phase == v1.PodRunning && !mainRunning {
		ready = r.status[0].State.Running != nil
	}
	initStatus := append([]v1.ContainerStatus(nil), r.initStatus...)
	status := append([]v1.ContainerStatus(nil), r.status...)
	err := r.s.updateStatus(r.pod.Namespace, r.pod.Name, r.uid, func(p *v1.Pod) bool {
		if isTerminal(p) {
			return false // terminal phases are final
		}
		now := metav1.Now()
		p.Status.Phase = phase
		p.Status.HostIP = "127.0.0.1"
		p.Status.HostIPs = []v1.HostIP{{IP: "127.0.0.1"}}
		p.Status.PodIP = "127.0.0.1"
		p.Status.PodIPs = []v1.PodIP{{IP: "127.0.0.1"}}
		st := r.startTime
		p.Status.StartTime = &st
		p.Status.InitContainerStatuses = initStatus
		p.Status.ContainerStatuses = status
		terminal := phase == v1.PodSucceeded || phase == v1.PodFailed
		setCond(p, v1.PodScheduled, true, "", now)
		setCond(p, v1.PodReadyToStartContainers, !terminal, "", now)
		initReason := ""
		if !initDone {
			initReason = "ContainersNotInitialized"
		}
		setCond(p, v1.PodInitialized, initDone, initReason, now)
		readyReason := ""
		if terminal {
			readyReason = "PodCompleted"
		} else if !ready {
			readyReason = "ContainersNotReady"
		}
		setCond(p, v1.ContainersReady, ready, readyReason, now)
		setCond(p, v1.PodReady, ready, readyReason, now)
		return true
	})
	if err != nil {
		r.logf("status update failed: %v", err)
	}
}

func setCond(p *v1.Pod, t v1.PodConditionType, ok bool, reason string, now metav1.Time) {
	status := v1.ConditionFalse
	if ok {
		status = v1.ConditionTrue
	}
	for i := range p.Status.Conditions {
		c := &p.Status.Conditions[i]
		if c.Type == t {
			if c.Status != status {
				c.LastTransitionTime = now
			}
			c.Status, c.Reason = status, reason
			c.LastProbeTime = metav1.Time{}
			return
		}
	}
	p.Status.Conditions = append(p.Status.Conditions, v1.PodCondition{Type: t, Status: status, Reason: reason, LastTransitionTime: now})
}

func setNotReady(p *v1.Pod, now metav1.Time) {
	setCond(p, v1.ContainersReady, false, "PodCompleted", now)
	setCond(p, v1.PodReady, false, "PodCompleted", now)
	setCond(p, v1.PodReadyToStartContainers, false, "", now)
}
