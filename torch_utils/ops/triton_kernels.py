"""Triton kernels for bias_act and upfirdn2d, with autograd of any order.

Imported only through `fused.kernels()` (Triton is optional). Each op is a pair of autograd Functions
whose backward is again one of these Functions, so R1 and path-length regularisation (double backward)
work on the fused path too:
  * bias_act (linear / relu / lrelu, gain, clamp): y = clamp(gain * act(x + b)). The derivative is
    piecewise constant and can be read off y alone (its sign, and |y| reaching the clamp), so the
    backward saves only y; the gradient op dx = dy * m(y) is linear in dy with zero derivative in y, so
    its own backward is the same op applied to the incoming gradient.
  * upfirdn2d with a prepared 2-D filter g (flip and gain already applied): out[o] = sum_k g[k] * U[o*down + k - p0],
    U the zero-inserted input. It is linear in x; its adjoint is the same op with g flipped, up and down
    swapped and the padding mirrored, so the backward of any order is this op again.
Arithmetic is float32 in registers whatever the storage dtype; every output is rounded once. The
kernels use only builtins of triton.language (no `tl.zeros` & co., which are themselves jit functions
and break Triton's CPU interpreter when Triton was imported before TRITON_INTERPRET was set).
"""
import torch
import triton
import triton.language as tl

from .upfirdn2d import output_size

BLOCK = 1024
ACT_CODES = {'linear': 0, 'relu': 1, 'lrelu': 2}

#----------------------------------------------------------------------------
# bias_act

@triton.jit
def _bias_act_fwd_kernel(x_ptr, b_ptr, y_ptr, n, stride_c, num_c, alpha, gain, clamp,
                         HAS_BIAS: tl.constexpr, ACT: tl.constexpr, HAS_CLAMP: tl.constexpr, BLOCK_SIZE: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offs < n
    v = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        v += tl.load(b_ptr + (offs // stride_c) % num_c, mask=mask, other=0.0).to(tl.float32)
    if ACT == 1:
        v = tl.where(v < 0, 0.0, v)             # keeps NaN, like torch.relu
    if ACT == 2:
        v = tl.where(v < 0, v * alpha, v)
    v = v * gain
    if HAS_CLAMP:
        v = tl.where(v > clamp, clamp, tl.where(v < -clamp, -clamp, v))
    tl.store(y_ptr + offs, v.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _bias_act_grad_kernel(dy_ptr, y_ptr, dx_ptr, n, alpha, gain, clamp,
                          ACT: tl.constexpr, HAS_CLAMP: tl.constexpr, BLOCK_SIZE: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offs < n
    dy = tl.load(dy_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    y = tl.load(y_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    slope = tl.where(mask, gain, 0.0)     # NaN in y gets the slope torch's own backward gives it:
    if ACT == 1:
        slope = tl.where(y <= 0, 0.0, slope)  # relu passes it,
    if ACT == 2:
        slope = tl.where(y > 0, slope, slope * alpha)  # lrelu scales it by alpha,
    if HAS_CLAMP:
        slope = tl.where(tl.abs(y) < clamp, slope, 0.0)  # clamp stops it.
    tl.store(dx_ptr + offs, (dy * slope).to(dx_ptr.dtype.element_ty), mask=mask)


def _like(t, ref):
    """`t` with the same strides as the dense tensor `ref` (a copy only when they differ)."""
    if t.stride() == ref.stride():
        return t
    return torch.empty_like(ref, dtype=t.dtype).copy_(t)


def _grid(n):
    return (triton.cdiv(n, BLOCK),)


def bias_act_forward(x, b, dim, act, alpha, gain, clamp):
    y = torch.empty_like(x)  # keeps x's dense layout (contiguous or channels-last)
    n = x.numel()
    if n:
        _bias_act_fwd_kernel[_grid(n)](x, b if b is not None else x, y, n, x.stride(dim) if b is not None else 1,
                                       x.shape[dim] if b is not None else 1, alpha, gain, clamp if clamp is not None else 0.0,
                                       HAS_BIAS=b is not None, ACT=ACT_CODES[act], HAS_CLAMP=clamp is not None, BLOCK_SIZE=BLOCK)
    return y


def bias_act_grad(dy, y, act, alpha, gain, clamp):
    dy = _like(dy, y)
    dx = torch.empty_like(y, dtype=dy.dtype)
    n = y.numel()
    if n:
        _bias_act_grad_kernel[_grid(n)](dy, y, dx, n, alpha, gain, clamp if clamp is not None else 0.0,
                                        ACT=ACT_CODES[act], HAS_CLAMP=clamp is not None, BLOCK_SIZE=BLOCK)
    return dx


class BiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, dim, act, alpha, gain, clamp):  # pylint: disable=arguments-differ
        y = bias_act_forward(x, b, dim, act, alpha, gain, clamp)
        ctx.save_for_backward(y)
        ctx.opts = (act, alpha, gain, clamp)
        ctx.dim = dim
        ctx.has_bias = b is not None
        return y

    @staticmethod
    def backward(ctx, dy):  # pylint: disable=arguments-differ
        y, = ctx.saved_tensors
        dx = BiasActGrad.apply(dy, y, *ctx.opts) if ctx.needs_input_grad[0] or ctx.needs_input_grad[1] else None
        db = None
        if ctx.has_bias and ctx.needs_input_grad[1]:
            db = dx.sum([i for i in range(dx.ndim) if i != ctx.dim])
        return dx, db, None, None, None, None, None


class BiasActGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dy, y, act, alpha, gain, clamp):  # pylint: disable=arguments-differ
        ctx.save_for_backward(y)
        ctx.opts = (act, alpha, gain, clamp)
        return bias_act_grad(dy, y, act, alpha, gain, clamp)

    @staticmethod
    def backward(ctx, ddx):  # pylint: disable=arguments-differ
        y, = ctx.saved_tensors
        # Linear in dy with a piecewise-constant factor of y: d/d(dy) is the same op, d/dy is zero.
        return BiasActGrad.apply(ddx, y, *ctx.opts), None, None, None, None, None

#----------------------------------------------------------------------------
# upfirdn2d

@triton.jit
def _upfirdn2d_kernel(x_ptr, g_ptr, y_ptr, total, num_c, in_h, in_w, out_h, out_w,
                      sxn, sxc, sxh, sxw, syn, syc, syh, syw,
                      UPX: tl.constexpr, UPY: tl.constexpr, DOWNX: tl.constexpr, DOWNY: tl.constexpr,
                      PX0: tl.constexpr, PY0: tl.constexpr, FW: tl.constexpr, FH: tl.constexpr, BLOCK_SIZE: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)  # y's memory order (y is dense)
    mask = offs < total
    n = offs // syn                      # in a dense tensor, index_d = (offset // stride_d) % size_d
    c = (offs // syc) % num_c
    oy = (offs // syh) % out_h
    ox = (offs // syw) % out_w
    base = x_ptr + n * sxn + c * sxc
    acc = offs.to(tl.float32) * 0.0
    for fy in tl.static_range(FH):
        uy = oy * DOWNY + (fy - PY0)              # row in the zero-inserted input
        iy = uy // UPY
        ok_y = mask & (uy >= 0) & (uy % UPY == 0) & (iy < in_h)
        for fx in tl.static_range(FW):
            ux = ox * DOWNX + (fx - PX0)
            ix = ux // UPX
            ok = ok_y & (ux >= 0) & (ux % UPX == 0) & (ix < in_w)
            v = tl.load(base + iy * sxh + ix * sxw, mask=ok, other=0.0).to(tl.float32)
            acc += v * tl.load(g_ptr + (fy * FW + fx))
    tl.store(y_ptr + offs, acc.to(y_ptr.dtype.element_ty), mask=mask)


def upfirdn2d_forward(x, g, up, down, pad):
    """x [N, C, H, W], g [fh, fw] float32 (flip and gain applied), up/down (x, y), pad (x0, x1, y0, y1)."""
    (upx, upy), (downx, downy), (px0, _px1, py0, _py1) = up, down, pad
    n, c, h, w = x.shape
    fh, fw = g.shape
    out_h, out_w = output_size(h, w, up, down, pad, fw, fh)
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    y = torch.empty([n, c, out_h, out_w], dtype=x.dtype, device=x.device,
                    memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    total = y.numel()
    if total:
        _upfirdn2d_kernel[_grid(total)](x, g, y, total, c, h, w, out_h, out_w, *x.stride(), *y.stride(),
                                        UPX=upx, UPY=upy, DOWNX=downx, DOWNY=downy, PX0=px0, PY0=py0, FW=fw, FH=fh,
                                        BLOCK_SIZE=BLOCK)
    return y


class UpFirDn2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, g, up, down, pad):  # pylint: disable=arguments-differ
        y = upfirdn2d_forward(x, g, up, down, pad)
        ctx.save_for_backward(g)
        ctx.geometry = (up, down, pad, x.shape[2], x.shape[3], y.shape[2], y.shape[3])
        return y

    @staticmethod
    def backward(ctx, dy):  # pylint: disable=arguments-differ
        g, = ctx.saved_tensors
        (upx, upy), (downx, downy), (px0, _px1, py0, _py1), h, w, out_h, out_w = ctx.geometry
        fh, fw = g.shape
        pad = (fw - px0 - 1, w * upx - out_w * downx + px0 - upx + 1, fh - py0 - 1, h * upy - out_h * downy + py0 - upy + 1)
        dx = UpFirDn2d.apply(dy, g.flip([0, 1]), (downx, downy), (upx, upy), pad)
        return dx, None, None, None, None
