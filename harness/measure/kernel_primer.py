"""Runs torch's common CPU kernels once, on small tensors, before the memory baseline.

The first call of a kernel faults in its machine code from libtorch_cpu.so / MKL / oneDNN. Those
pages count in the process's resident set, so without this primer the first model to run a
convolution, a GEMM or attention is charged ~20 MB of library code (measured on Whisper tiny:
25 MB of libtorch_cpu.so pages) that any torch model in any process pays once and that no recipe
changes. The shapes are small but take the same code paths as real ones (blocked GEMMs,
flash-style attention, real FFT).
"""

from __future__ import annotations


def prime_torch_kernels() -> None:
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        mel = torch.randn(1, 80, 400, generator=gen)
        h = F.gelu(F.conv1d(mel, torch.randn(64, 80, 3, generator=gen), padding=1))
        h = F.gelu(F.conv1d(h, torch.randn(64, 64, 3, generator=gen), stride=2, padding=1)).transpose(1, 2)
        h = F.layer_norm(h, (64,))
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)  # RMS norm
        h = F.silu(F.linear(h, torch.randn(256, 64, generator=gen), torch.zeros(256)))
        h = F.linear(h, torch.randn(64, 256, generator=gen))
        q = h.reshape(1, -1, 4, 16).transpose(1, 2).contiguous()
        F.scaled_dot_product_attention(q, q, q)
        F.scaled_dot_product_attention(q[:, :, :8], q[:, :, :8], q[:, :, :8], is_causal=True)
        mask = torch.zeros(1, 1, 1, q.shape[2], dtype=torch.bool)
        F.scaled_dot_product_attention(q[:, :, :1], q, q, attn_mask=~mask)
        torch.bmm(q[0], q[0].transpose(1, 2)).softmax(-1)
        table = torch.randn(1000, 64, generator=gen)
        tokens = F.embedding(torch.tensor([[1, 2, 3]]), table)
        logits = F.linear(tokens, table).float()
        last = logits[0, -1]
        last.argmax(-1), torch.sort(last, descending=True), torch.topk(last, 5), last.log_softmax(-1)
        torch.where(last > 0, last, -last), torch.cat([tokens, tokens], 1), last.index_select(0, torch.tensor([1, 2]))
        spec = torch.stft(torch.randn(4000, generator=gen), 400, 160, window=torch.hann_window(400), return_complex=True)
        torch.log10(torch.clamp(spec.abs().pow(2), min=1e-10))
