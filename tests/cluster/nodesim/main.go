// nodesim stands in for kubelet and a container runtime in flowrun's test
// control plane (tests/cluster). It watches Pods, binds unscheduled ones to its
// Node, runs each pod's containers as local processes (no containers, no
// images: an image name maps to local programs through --image-map) and
// reports pod status the way kubelet does, so that the real Job controller and
// garbage collector drive Jobs to completion.
//
// See docs/control-plane.md for its behaviour and limits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"
)

type config struct {
	kubeconfig     string
	nodeName       string
	stateDir       string
	imageMapFile   string
	namespace      string
	schedulerName  string
	maxGrace       time.Duration
	restartBackoff time.Duration
	maxBackoff     time.Duration
	workers        int
	inheritEnv     bool
}

type sim struct {
	cfg      config
	client   kubernetes.Interface
	lister   corelisters.PodLister
	queue    workqueue.TypedRateLimitingInterface[string]
	images   *imageMap
	ctx      context.Context
	mu       sync.Mutex
	runs     map[types.UID]*podRun // pods this process runs (or ran), by UID
	deleted  map[types.UID]bool    // pods we already deleted with grace 0
	lostDone map[types.UID]bool    // pods we already marked NodeLost
}

func main() {
	var cfg config
	flag.StringVar(&cfg.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file")
	flag.StringVar(&cfg.nodeName, "node-name", "nodesim", "name of the Node this simulator registers and binds pods to")
	flag.StringVar(&cfg.stateDir, "state-dir", "", "directory for per-pod work dirs, logs and termination-message files (required)")
	flag.StringVar(&cfg.imageMapFile, "image-map", "", "YAML or JSON file mapping image names to local programs (optional)")
	flag.StringVar(&cfg.namespace, "namespace", "", "watch only this namespace (default: all)")
	flag.StringVar(&cfg.schedulerName, "scheduler-name", "default-scheduler", "bind only pods with this spec.schedulerName")
	flag.DurationVar(&cfg.maxGrace, "max-grace", 3*time.Second, "cap on a deleted pod's termination grace period before SIGKILL")
	flag.DurationVar(&cfg.restartBackoff, "restart-backoff", time.Second, "first delay before restarting a container (restartPolicy OnFailure/Always); doubles")
	flag.DurationVar(&cfg.maxBackoff, "max-restart-backoff", 10*time.Second, "cap on the restart delay")
	flag.IntVar(&cfg.workers, "workers", 4, "concurrent pod reconcilers")
	flag.BoolVar(&cfg.inheritEnv, "inherit-env", false, "pass the simulator's own environment to the processes (default: only PATH, HOME, HOSTNAME, TMPDIR and the pod's env)")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.SetPrefix("nodesim: ")
	if cfg.stateDir == "" {
		log.Fatal("--state-dir is required")
	}
	if err := run(cfg); err != nil {
		log.Fatal(err)
	}
}

func run(cfg config) error {
	var err error
	if cfg.stateDir, err = filepath.Abs(cfg.stateDir); err != nil {
		return err
	}
	for _, d := range []string{"pods", "logs"} {
		if err := os.MkdirAll(filepath.Join(cfg.stateDir, d), 0o755); err != nil {
			return err
		}
	}
	images, err := loadImageMap(cfg.imageMapFile)
	if err != nil {
		return err
	}
	restCfg, err := clientcmd.BuildConfigFromFlags("", cfg.kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	restCfg.QPS, restCfg.Burst = 100, 200
	restCfg.UserAgent = "nodesim/" + cfg.nodeName
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()

	go spawner()

	s := &sim{
		cfg:      cfg,
		client:   client,
		images:   images,
		ctx:      ctx,
		runs:     map[types.UID]*podRun{},
		deleted:  map[types.UID]bool{},
		lostDone: map[types.UID]bool{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](200*time.Millisecond, 5*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "pods"}),
	}

	// The Node must exist before pods are bound to it; keep it there.
	for {
		if err := s.ensureNode(ctx); err == nil {
			break
		} else {
			log.Printf("registering node %s: %v (retrying)", cfg.nodeName, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.ensureNode(ctx); err != nil {
					log.Printf("node %s: %v", cfg.nodeName, err)
				}
			}
		}
	}()

	// The informer re-lists after any watch failure (including 410 Gone after
	// an etcd compaction or an apiserver restart); every pod then passes
	// through reconcile again, which is idempotent.
	opts := []informers.SharedInformerOption{}
	if cfg.namespace != "" {
		opts = append(opts, informers.WithNamespace(cfg.namespace))
	}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, opts...)
	podInformer := factory.Core().V1().Pods()
	s.lister = podInformer.Lister()
	_, err = podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.enqueue(obj) },
		UpdateFunc: func(_, obj any) { s.enqueue(obj) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if pod, ok := obj.(*v1.Pod); ok {
				s.podGone(pod.UID)
			}
		},
	})
	if err != nil {
		return err
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.Informer().HasSynced) {
		return nil
	}
	log.Printf("node %s ready; state dir %s", cfg.nodeName, cfg.stateDir)
	readyFile := filepath.Join(cfg.stateDir, "ready")
	if err := os.WriteFile(readyFile, []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o644); err != nil {
		return err
	}
	defer os.Remove(readyFile)
	var wg sync.WaitGroup
	for i := 0; i < cfg.workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s.processNext() {
			}
		}()
	}
	<-ctx.Done()
	log.Printf("shutting down: killing all pod processes")
	s.queue.ShutDown()
	s.mu.Lock()
	for _, r := range s.runs {
		r.killNow()
	}
	s.mu.Unlock()
	wg.Wait()
	return nil
}

func (s *sim) enqueue(obj any) {
	key, err := cache.MetaNamespaceKeyFunc(obj)
	if err == nil {
		s.queue.Add(key)
	}
}

func (s *sim) processNext() bool {
	key, quit := s.queue.Get()
	if quit {
		return false
	}
	defer s.queue.Done(key)
	if err := s.reconcile(key); err != nil {
		log.Printf("pod %s: %v (will retry)", key, err)
		s.queue.AddRateLimited(key)
		return true
	}
	s.queue.Forget(key)
	return true
}

func (s *sim) podGone(uid types.UID) {
	s.mu.Lock()
	r := s.runs[uid]
	delete(s.runs, uid)
	delete(s.deleted, uid)
	delete(s.lostDone, uid)
	s.mu.Unlock()
	if r != nil {
		r.killNow()
	}
}

func isTerminal(pod *v1.Pod) bool {
	return pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed
}

func (s *sim) reconcile(key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := s.lister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil // the delete handler has killed what ran
	}
	if err != nil {
		return err
	}

	s.mu.Lock()
	r := s.runs[pod.UID]
	s.mu.Unlock()

	if r != nil {
		// Ours: only deletion matters; the run's goroutine does the rest.
		if pod.DeletionTimestamp != nil {
			r.requestDelete(s.graceFor(pod))
		}
		return nil
	}

	if pod.DeletionTimestamp != nil {
		// Not running here. Kubelet finishes deleting pods on its node whose
		// containers are gone; do the same (finalizers stay with their owners).
		if pod.Spec.NodeName == s.cfg.nodeName {
			return s.deletePod(pod)
		}
		return nil
	}
	if isTerminal(pod) {
		return nil
	}

	switch pod.Spec.NodeName {
	case "":
		sched := pod.Spec.SchedulerName
		if sched == "" {
			sched = "default-scheduler"
		}
		if sched != s.cfg.schedulerName {
			return nil
		}
		if len(pod.Spec.SchedulingGates) > 0 {
			return nil
		}
		err := s.client.CoreV1().Pods(ns).Bind(s.ctx, &v1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: pod.UID},
			Target:     v1.ObjectReference{Kind: "Node", Name: s.cfg.nodeName},
		}, metav1.CreateOptions{})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil // gone, or bound meanwhile (a later event says where)
		}
		if err != nil {
			return fmt.Errorf("binding: %w", err)
		}
		log.Printf("pod %s/%s (%s): bound to %s", ns, name, pod.UID, s.cfg.nodeName)
		s.start(pod)
	case s.cfg.nodeName:
		// Bound here, but this process does not run it: either it was bound
		// without us (spec.nodeName set at creation) or a previous simulator
		// process ran it and its process died with that simulator.
		if started(pod) {
			return s.markLost(pod)
		}
		s.start(pod)
	}
	return nil
}

// started reports whether any container of the pod was reported started.
func started(pod *v1.Pod) bool {
	if pod.Status.Phase == v1.PodRunning {
		return true
	}
	for _, st := range append(append([]v1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
		if st.State.Running != nil || st.State.Terminated != nil || st.LastTerminationState.Terminated != nil {
			return true
		}
	}
	return false
}

func (s *sim) start(pod *v1.Pod) {
	r := newPodRun(s, pod)
	s.mu.Lock()
	if s.runs[pod.UID] != nil {
		s.mu.Unlock()
		return
	}
	s.runs[pod.UID] = r
	s.mu.Unlock()
	go r.run()
}

func (s *sim) graceFor(pod *v1.Pod) time.Duration {
	g := 30 * time.Second
	if pod.DeletionGracePeriodSeconds != nil {
		g = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	} else if pod.Spec.TerminationGracePeriodSeconds != nil {
		g = time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	if g > s.cfg.maxGrace {
		g = s.cfg.maxGrace
	}
	return g
}

func (s *sim) deletePod(pod *v1.Pod) error {
	s.mu.Lock()
	done := s.deleted[pod.UID]
	s.mu.Unlock()
	if done {
		return nil
	}
	zero := int64(0)
	uid := pod.UID
	err := s.client.CoreV1().Pods(pod.Namespace).Delete(s.ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero,
		Preconditions:      &metav1.Preconditions{UID: &uid},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting: %w", err)
	}
	log.Printf("pod %s/%s (%s): deleted (grace 0)", pod.Namespace, pod.Name, pod.UID)
	s.mu.Lock()
	s.deleted[pod.UID] = true
	s.mu.Unlock()
	return nil
}

// markLost fails a pod that a previous simulator process was running: its
// process is gone (nodesim does not re-adopt processes across restarts).
func (s *sim) markLost(pod *v1.Pod) error {
	s.mu.Lock()
	done := s.lostDone[pod.UID]
	s.mu.Unlock()
	if done {
		return nil
	}
	now := metav1.Now()
	err := s.updateStatus(pod.Namespace, pod.Name, pod.UID, func(p *v1.Pod) bool {
		if isTerminal(p) {
			return false
		}
		p.Status.Phase = v1.PodFailed
		p.Status.Reason = "NodeLost"
		p.Status.Message = "nodesim restarted while this pod was running; its process was lost"
		for i := range p.Status.ContainerStatuses {
			cs := &p.Status.ContainerStatuses[i]
			if cs.State.Terminated == nil {
				var startedAt metav1.Time
				if cs.State.Running != nil {
					startedAt = cs.State.Running.StartedAt
				}
				cs.State = v1.ContainerState{Terminated: &v1.ContainerStateTerminated{
					ExitCode: 137, Reason: "NodeLost", Message: p.Status.Message,
					StartedAt: startedAt, FinishedAt: now, ContainerID: cs.ContainerID,
				}}
			}
			cs.Ready = false
			f := false
			cs.Started = &f
		}
		setNotReady(p, now)
		return true
	})
	if err != nil {
		return err
	}
	log.Printf("pod %s/%s (%s): marked Failed (NodeLost)", pod.Namespace, pod.Name, pod.UID)
	s.mu.Lock()
	s.lostDone[pod.UID] = true
	s.mu.Unlock()
	return nil
}

// updateStatus reads the pod from the API, applies mutate (which returns false
// to skip) and writes the status subresource, retrying on conflicts.
func (s *sim) updateStatus(ns, name string, uid types.UID, mutate func(*v1.Pod) bool) error {
	// Status writes must land even while the simulator shuts down.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		p, err := s.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if p.UID != uid {
			return nil
		}
		if !mutate(p) {
			return nil
		}
		_, err = s.client.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		if !apierrors.IsConflict(err) {
			log.Printf("pod %s/%s: status update: %v (retrying)", ns, name, err)
			time.Sleep(200 * time.Millisecond)
		}
	}
}

func (s *sim) ensureNode(ctx context.Context) error {
	nodes := s.client.CoreV1().Nodes()
	node, err := nodes.Get(ctx, s.cfg.nodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node, err = nodes.Create(ctx, &v1.Node{ObjectMeta: metav1.ObjectMeta{
			Name: s.cfg.nodeName,
			Labels: map[string]string{
				"kubernetes.io/hostname": s.cfg.nodeName,
				"kubernetes.io/os":       runtime.GOOS,
				"kubernetes.io/arch":     runtime.GOARCH,
				"flowrun.test/nodesim":   "true",
			},
		}}, metav1.CreateOptions{})
		if err == nil {
			log.Printf("created node %s", s.cfg.nodeName)
		}
	}
	if err != nil {
		return err
	}
	for _, c := range node.Status.Conditions {
		if c.Type == v1.NodeReady && c.Status == v1.ConditionTrue {
			return nil
		}
	}
	now := metav1.Now()
	capacity := v1.ResourceList{
		v1.ResourceCPU:              resource.MustParse("64"),
		v1.ResourceMemory:           resource.MustParse("256Gi"),
		v1.ResourcePods:             resource.MustParse("1000"),
		v1.ResourceEphemeralStorage: resource.MustParse("1Ti"),
	}
	node.Status.Capacity = capacity
	node.Status.Allocatable = capacity
	node.Status.Phase = v1.NodeRunning
	node.Status.Addresses = []v1.NodeAddress{
		{Type: v1.NodeInternalIP, Address: "127.0.0.1"},
		{Type: v1.NodeHostName, Address: s.cfg.nodeName},
	}
	node.Status.NodeInfo = v1.NodeSystemInfo{
		KubeletVersion: "nodesim", ContainerRuntimeVersion: "nodesim://local-processes",
		OperatingSystem: runtime.GOOS, Architecture: runtime.GOARCH,
	}
	node.Status.Conditions = []v1.NodeCondition{
		{Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "NodesimReady", Message: "nodesim is running pods as local processes", LastHeartbeatTime: now, LastTransitionTime: now},
		{Type: v1.NodeMemoryPressure, Status: v1.ConditionFalse, Reason: "NodesimNoPressure", LastHeartbeatTime: now, LastTransitionTime: now},
		{Type: v1.NodeDiskPressure, Status: v1.ConditionFalse, Reason: "NodesimNoPressure", LastHeartbeatTime: now, LastTransitionTime: now},
		{Type: v1.NodePIDPressure, Status: v1.ConditionFalse, Reason: "NodesimNoPressure", LastHeartbeatTime: now, LastTransitionTime: now},
	}
	_, err = nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		return errors.New("conflict updating node status")
	}
	return err
}
