"""torch.distributed helpers: set-up from torchrun-style environment variables, `--gpus=N` spawning
with sibling termination, and rank queries that also work without a process group.

One process per device. Backend NCCL on CUDA, gloo on CPU. The process group has a timeout, so a rank
that dies makes the collectives of the others fail after at most that long instead of hanging; with
`launch()` the parent also stops every sibling as soon as one child exits abnormally.
"""
import datetime
import os
import socket
import sys
import threading
import time

import torch

DEFAULT_TIMEOUT_S = int(os.environ.get('CGGAN_DIST_TIMEOUT', '600'))

#----------------------------------------------------------------------------

class DistributedError(RuntimeError):
    """A rank died or the group could not be set up; the message says which and what to do."""

#----------------------------------------------------------------------------

def is_initialized() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def get_rank() -> int:
    return torch.distributed.get_rank() if is_initialized() else 0


def get_world_size() -> int:
    return torch.distributed.get_world_size() if is_initialized() else 1


def get_local_rank() -> int:
    return int(os.environ.get('LOCAL_RANK', '0'))


def uses_nccl() -> bool:
    return is_initialized() and torch.distributed.get_backend() == 'nccl'


def print0(*args, **kwargs):
    if get_rank() == 0:
        print(*args, **kwargs)


def barrier():
    if get_world_size() > 1:
        torch.distributed.barrier()

#----------------------------------------------------------------------------

def init(device_type: str = 'cuda', timeout_s: int = DEFAULT_TIMEOUT_S) -> torch.device:
    """Join the process group described by RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT (set by torchrun or
    `launch`) when WORLD_SIZE > 1; returns this rank's device ('cuda:LOCAL_RANK' or 'cpu')."""
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    use_cuda = device_type == 'cuda'
    if use_cuda and not torch.cuda.is_available():
        raise DistributedError('CUDA was requested but no GPU is visible; pass --gpus=0 (CPU) or check CUDA_VISIBLE_DEVICES.')
    device = torch.device('cuda', get_local_rank()) if use_cuda else torch.device('cpu')
    if use_cuda:
        torch.cuda.set_device(device)
    if world_size > 1 and not is_initialized():
        os.environ.setdefault('TORCH_NCCL_ASYNC_ERROR_HANDLING', '1')  # a timed-out NCCL collective aborts the process
        backend = 'nccl' if use_cuda else 'gloo'
        kwargs = dict(device_id=device) if use_cuda else dict()
        try:
            torch.distributed.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s), **kwargs)
        except TypeError:  # older PyTorch without device_id
            torch.distributed.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return device


def shutdown(sync: bool = True):
    """Leave the process group. With `sync` (the normal end of a job) the ranks first meet at a barrier, so
    no rank tears down its communicators while a sibling still has collectives or a snapshot write in
    flight; pass sync=False on an error path, where a sibling may already be dead."""
    if is_initialized():
        if sync and get_world_size() > 1:
            torch.distributed.barrier()
        torch.distributed.destroy_process_group()

#----------------------------------------------------------------------------

def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _exit_when_orphaned(parent_pid: int, poll_s: float = 1.0):
    """Daemon thread: a child whose spawning parent died exits instead of waiting forever."""
    def watch():
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent_pid:
                os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


def _child_entry(rank, world_size, port, parent_pid, worker, args):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_WORLD_SIZE=str(world_size),
                      MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    _exit_when_orphaned(parent_pid)
    worker(*args)
    # Normal end: leave the group together, then exit without interpreter finalisation. Letting Python
    # finalise a process that used gloo can abort in C++ destructors ("terminate called without an active
    # exception", seen once in CI), which would turn a finished job into a failed one.
    shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def launch(worker, num_procs: int, args: tuple = (), poll_s: float = 0.5):
    """Run `worker(*args)` in `num_procs` spawned processes (ranks 0..N-1 on this machine).

    When one process exits abnormally, the others are terminated and DistributedError names the rank.
    `worker` must be a picklable top-level function.
    """
    import torch.multiprocessing as mp
    port = find_free_port()
    context = mp.start_processes(_child_entry, args=(num_procs, port, os.getpid(), worker, args), nprocs=num_procs,
                                 join=False, start_method='spawn')
    try:
        while not context.join(timeout=poll_s):
            pass
    except mp.ProcessExitedException as e:
        _terminate(context)
        how = f'was killed by {e.signal_name}' if getattr(e, 'signal_name', None) else f'exited with code {e.exit_code}'
        raise DistributedError(f'Rank {e.error_index} {how}; the other ranks were stopped. See the log above for its last words.') from None
    except mp.ProcessRaisedException as e:
        _terminate(context)
        print(str(e), file=sys.stderr)  # the rank's traceback
        last = str(e).strip().splitlines()[-1] if str(e).strip() else 'unknown error'
        raise DistributedError(f'Rank {e.error_index} failed ({last}); the other ranks were stopped.') from None
    except KeyboardInterrupt:
        _terminate(context)
        raise


def _terminate(context, grace_s: float = 5.0):
    for p in context.processes:
        if p.is_alive():
            p.terminate()
    deadline = time.time() + grace_s
    for p in context.processes:
        p.join(max(deadline - time.time(), 0))
        if p.is_alive():
            p.kill()
            p.join()

#----------------------------------------------------------------------------

def all_reduce_mean_(tensor: torch.Tensor) -> torch.Tensor:
    """In-place average over ranks (no-op on one rank)."""
    if get_world_size() > 1:
        torch.distributed.all_reduce(tensor)
        tensor /= get_world_size()
    return tensor


def broadcast_object(obj, src: int = 0):
    """Send a picklable object from rank `src` to all ranks."""
    if get_world_size() == 1:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=src)
    return box[0]

#----------------------------------------------------------------------------

if __name__ == '__main__':
    sys.exit('torch_utils.distributed is a library; run train.py --gpus=N or torchrun train.py instead.')
