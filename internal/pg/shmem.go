package pg

/*
#include <stdlib.h>
#include "csrc/pggo_abi.h"
int pggo_call_shmem_region(const char *name, uint64_t size, uint32_t align, void **data, uint32_t **init, int *index, pggo_error *err);
int pggo_call_shmem_lock(int index, int mode, pggo_error *err);
int pggo_call_mq_create(size_t size, int role, void **mq, uint32_t *handle, pggo_error *err);
int pggo_call_mq_attach(uint32_t handle, int role, void **mq, pggo_error *err);
int pggo_call_mq_set_worker(void *mq, void *h, pggo_error *err);
int pggo_call_mq_send(void *mq, const char *data, size_t len, int nowait, pggo_error *err);
int pggo_call_mq_receive(void *mq, char **data, size_t *len, int nowait, pggo_error *err);
int pggo_call_mq_detach(void *mq, pggo_error *err);
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"
)

// Limits of shared memory regions and the values of pggo_abi.h.
const (
	RegionNameLen = int(C.PGGO_REGION_NAMELEN)
	MaxRegions    = int(C.PGGO_MAX_REGIONS)
	RegionMaxSize = uint64(1) << 30 // PGGO_REGION_MAXSIZE

	LockRelease   = int(C.PGGO_LOCK_RELEASE)
	LockShared    = int(C.PGGO_LOCK_SHARED)
	LockExclusive = int(C.PGGO_LOCK_EXCLUSIVE)

	MQSender   = int(C.PGGO_MQ_SENDER)
	MQReceiver = int(C.PGGO_MQ_RECEIVER)

	MQOK          = int(C.PGGO_MQ_OK)
	MQWouldBlock  = int(C.PGGO_MQ_WOULD_BLOCK)
	MQDetached    = int(C.PGGO_MQ_DETACHED)
	MQInterrupted = int(C.PGGO_MQ_INTERRUPTED)
)

// RegionSpec is a shared memory region as the postmaster reserves it.
type RegionSpec struct {
	Name  string
	Size  uint64
	Align uint32
}

var (
	regionMu sync.Mutex
	regions  []RegionSpec
)

// DeclareRegion records a region for the init helper's reply. The name is
// checked here so that a mistake is reported with the Go declaration, not
// as a malformed reply.
func DeclareRegion(s RegionSpec) error {
	if len(s.Name) == 0 || len(s.Name) > RegionNameLen {
		return fmt.Errorf("the name must have 1 to %d bytes", RegionNameLen)
	}
	for i := 0; i < len(s.Name); i++ {
		c := s.Name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("byte %d (%q) of the name is not a letter, digit, '_', '.' or '-'", i, c)
		}
	}
	if s.Size > RegionMaxSize {
		return fmt.Errorf("%d bytes is more than the %d allowed", s.Size, RegionMaxSize)
	}
	regionMu.Lock()
	defer regionMu.Unlock()
	for _, r := range regions {
		if r.Name == s.Name {
			return fmt.Errorf("a region of this name is already declared")
		}
	}
	if len(regions) >= MaxRegions {
		return fmt.Errorf("more than %d regions declared", MaxRegions)
	}
	regions = append(regions, s)
	return nil
}

// Regions returns the declared regions.
func Regions() []RegionSpec {
	regionMu.Lock()
	defer regionMu.Unlock()
	return append([]RegionSpec(nil), regions...)
}

// RegionAttach finds a region the postmaster reserved: its data, its
// "initialised" word and its index for RegionLock.
func RegionAttach(s RegionSpec) (data unsafe.Pointer, initialised *uint32, index int, err error) {
	if err := needAPI(); err != nil {
		return nil, nil, 0, err
	}
	cs := C.CString(s.Name)
	defer C.free(unsafe.Pointer(cs))
	var p unsafe.Pointer
	var flag *C.uint32_t
	var idx C.int
	var e C.pggo_error
	if C.pggo_call_shmem_region(cs, C.uint64_t(s.Size), C.uint32_t(s.Align), &p, &flag, &idx, &e) != 0 {
		return nil, nil, 0, convError(&e)
	}
	return p, (*uint32)(unsafe.Pointer(flag)), int(idx), nil
}

// RegionLock acquires (LockShared, LockExclusive) or releases (LockRelease)
// a region's LWLock.
func RegionLock(index, mode int) error {
	if err := needAPI(); err != nil {
		return err
	}
	var e C.pggo_error
	if C.pggo_call_shmem_lock(C.int(index), C.int(mode), &e) != 0 {
		return convError(&e)
	}
	return nil
}

// WorkerHandleOf is set by package bgworker: the handle of a
// *bgworker.DynamicWorker (nil for anything else).
var WorkerHandleOf func(w any) *Handle

// MQ is one end of a message queue, in C memory.
type MQ struct{ p unsafe.Pointer }

// MQCreate creates a queue of size bytes in a new DSM segment and takes the
// role's end; handle names the segment for the other process.
func MQCreate(size int, role int) (*MQ, uint32, error) {
	if err := needAPI(); err != nil {
		return nil, 0, err
	}
	if size < 0 {
		return nil, 0, fmt.Errorf("pggo: a message queue cannot have %d bytes", size)
	}
	var p unsafe.Pointer
	var h C.uint32_t
	var e C.pggo_error
	if C.pggo_call_mq_create(C.size_t(size), C.int(role), &p, &h, &e) != 0 {
		return nil, 0, convError(&e)
	}
	return &MQ{p}, uint32(h), nil
}

// MQAttach attaches to the queue in segment handle and takes the role's end.
func MQAttach(handle uint32, role int) (*MQ, error) {
	if err := needAPI(); err != nil {
		return nil, err
	}
	var p unsafe.Pointer
	var e C.pggo_error
	if C.pggo_call_mq_attach(C.uint32_t(handle), C.int(role), &p, &e) != 0 {
		return nil, convError(&e)
	}
	return &MQ{p}, nil
}

// MQSetWorker tells the queue which dynamic worker is its peer, so that a
// worker that dies before attaching counts as detached.
func MQSetWorker(q *MQ, h *Handle) error {
	var e C.pggo_error
	if h == nil || h.p == nil {
		return fmt.Errorf("pggo: the dynamic worker's handle was released")
	}
	if C.pggo_call_mq_set_worker(q.p, h.p, &e) != 0 {
		return convError(&e)
	}
	return nil
}

// MQSend sends one message; the result is one of the MQ* values.
func MQSend(q *MQ, msg []byte, nowait bool) (int, error) {
	var e C.pggo_error
	var p *C.char
	if len(msg) > 0 {
		p = (*C.char)(unsafe.Pointer(&msg[0]))
	}
	nw := C.int(0)
	if nowait {
		nw = 1
	}
	rc := C.pggo_call_mq_send(q.p, p, C.size_t(len(msg)), nw, &e)
	if rc < 0 {
		return 0, convError(&e)
	}
	return int(rc), nil
}

// MQReceive receives one message (copied into Go memory).
func MQReceive(q *MQ, nowait bool) ([]byte, int, error) {
	var e C.pggo_error
	var data *C.char
	var n C.size_t
	nw := C.int(0)
	if nowait {
		nw = 1
	}
	rc := C.pggo_call_mq_receive(q.p, &data, &n, nw, &e)
	if rc < 0 {
		return nil, 0, convError(&e)
	}
	if int(rc) != MQOK {
		return nil, int(rc), nil
	}
	if n == 0 {
		return []byte{}, MQOK, nil
	}
	return C.GoBytes(unsafe.Pointer(data), C.int(n)), MQOK, nil
}

// MQDetach detaches this end and frees it.
func MQDetach(q *MQ) error {
	var e C.pggo_error
	if C.pggo_call_mq_detach(q.p, &e) != 0 {
		return convError(&e)
	}
	q.p = nil
	return nil
}
