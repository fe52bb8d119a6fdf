package shmem

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/internal/pg"
)

// Role is the end of a queue a process holds.
type Role int

const (
	// Sender is the end that sends.
	Sender Role = Role(pg.MQSender)
	// Receiver is the end that receives.
	Receiver Role = Role(pg.MQReceiver)
)

// ErrDetached is returned once the other end is gone: it closed the queue
// or its process exited (an ERROR, FATAL or SIGTERM included), or the
// worker set with SetWorker stopped before it attached. Messages it sent
// before are still received first.
var ErrDetached = errors.New("shmem: the other end of the message queue detached")

// ErrInterrupted is returned by a blocking Send or Receive in a worker that
// took SIGTERM over (bgworker.AttachSignalHandlers with SIGTERM) once
// SIGTERM arrived, so the worker can stop while its peer is stuck. A Send
// interrupted this way may have written part of its message: close the
// queue (the peer gets ErrDetached).
var ErrInterrupted = errors.New("shmem: message queue wait interrupted by SIGTERM")

// QueueHandle names a queue's dynamic shared memory segment; pass it to the
// other process, e.g. as a worker's argument (Datum).
type QueueHandle uint32

// Datum packs the handle as a worker argument (bgworker.Builder.SetArgument).
func (h QueueHandle) Datum() pggo.Datum { return pggo.Datum(h) }

// HandleFromDatum reads a handle packed with Datum (bgworker's argument).
func HandleFromDatum(d pggo.Datum) QueueHandle { return QueueHandle(uint32(d)) }

// Queue is one end of a message queue: PostgreSQL's shm_mq in a dynamic
// shared memory segment of its own. Messages are []byte of any length
// (a message longer than the queue streams through it), delivered in
// order. Its methods call PostgreSQL: use them from the worker's (or SQL
// function's) goroutine.
type Queue struct {
	mu     sync.Mutex
	q      *pg.MQ
	handle QueueHandle
	role   Role
	worker *bgworker.DynamicWorker // keeps the handle shm_mq refers to alive
}

// CreateQueue creates a queue with a ring of size bytes and takes the
// role's end of it. 64 kB is a good size for rows; the smallest possible
// is a few dozen bytes.
func CreateQueue(size int, role Role) (*Queue, error) {
	if role != Sender && role != Receiver {
		return nil, fmt.Errorf("shmem: role %d is neither Sender nor Receiver", role)
	}
	q, h, err := pg.MQCreate(size, int(role))
	if err != nil {
		return nil, err
	}
	return &Queue{q: q, handle: QueueHandle(h), role: role}, nil
}

// AttachQueue attaches to the queue another process created and takes the
// role's end (the one its creator did not take).
func AttachQueue(h QueueHandle, role Role) (*Queue, error) {
	if role != Sender && role != Receiver {
		return nil, fmt.Errorf("shmem: role %d is neither Sender nor Receiver", role)
	}
	q, err := pg.MQAttach(uint32(h), int(role))
	if err != nil {
		return nil, err
	}
	return &Queue{q: q, handle: h, role: role}, nil
}

// Handle names the queue for the other process.
func (q *Queue) Handle() QueueHandle { return q.handle }

// SetWorker names the dynamic worker at the other end: if it stops before
// it attaches (it failed to start, or crashed early), Send and Receive
// return ErrDetached instead of waiting for it forever. The worker must
// have been launched with this process as its notify pid.
func (q *Queue) SetWorker(w *bgworker.DynamicWorker) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.q == nil {
		return errClosed
	}
	if err := pg.MQSetWorker(q.q, pg.WorkerHandleOf(w)); err != nil {
		return err
	}
	q.worker = w
	return nil
}

var errClosed = errors.New("shmem: the message queue is closed")

func (q *Queue) send(msg []byte, nowait bool) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.q == nil {
		return false, errClosed
	}
	rc, err := pg.MQSend(q.q, msg, nowait)
	if err != nil {
		return false, err
	}
	return rc == pg.MQOK, resultError(rc)
}

func resultError(rc int) error {
	switch rc {
	case pg.MQDetached:
		return ErrDetached
	case pg.MQInterrupted:
		return ErrInterrupted
	}
	return nil
}

// Send sends msg, waiting while the queue is full (back-pressure) until
// the receiver makes room. It returns ErrDetached if the receiver is gone,
// ErrInterrupted (see there), or the error of a query cancel in a SQL
// function. The message is visible to the receiver when Send returns.
func (q *Queue) Send(msg []byte) error {
	_, err := q.send(msg, false)
	return err
}

// TrySend sends msg if the queue has room for it now; false means it did
// not (yet): call TrySend again with the same message until it returns
// true, since part of it may already be in the queue.
func (q *Queue) TrySend(msg []byte) (bool, error) {
	return q.send(msg, true)
}

func (q *Queue) receive(nowait bool) ([]byte, bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.q == nil {
		return nil, false, errClosed
	}
	msg, rc, err := pg.MQReceive(q.q, nowait)
	if err != nil {
		return nil, false, err
	}
	return msg, rc == pg.MQOK, resultError(rc)
}

// Receive waits for the next message. After the sender detached, it
// returns the messages still queued, then ErrDetached.
func (q *Queue) Receive() ([]byte, error) {
	msg, _, err := q.receive(false)
	return msg, err
}

// TryReceive returns the next message if one is complete now.
func (q *Queue) TryReceive() ([]byte, bool, error) {
	return q.receive(true)
}

// Close detaches this end: the peer's next wait ends with ErrDetached once
// it has read what was sent. The segment goes away when both ends closed
// or exited.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.q == nil {
		return nil
	}
	err := pg.MQDetach(q.q)
	q.q = nil
	q.worker = nil
	return err
}

// TypedQueue sends and receives values of T over a Queue, JSON-encoded.
type TypedQueue[T any] struct{ Q *Queue }

// Typed wraps q.
func Typed[T any](q *Queue) TypedQueue[T] { return TypedQueue[T]{q} }

// Send encodes v and sends it.
func (t TypedQueue[T]) Send(v T) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return t.Q.Send(b)
}

// Receive waits for the next value.
func (t TypedQueue[T]) Receive() (T, error) {
	var v T
	b, err := t.Q.Receive()
	if err != nil {
		return v, err
	}
	err = json.Unmarshal(b, &v)
	return v, err
}
