"""pdlib.measurements: the published rows pdlib carries equal the files they were copied from."""
from pathlib import Path

import pandas as pd
import pytest

from pdlib import measurements as ms

SHARED = Path(__file__).resolve().parents[2] / "shared" / "gpu-measurements" / "sarathi"
needs_files = pytest.mark.skipif(not SHARED.is_dir(), reason="the published measurement files are not here")


def test_hand_values():
    mixed = ms.sarathi_mixed_batch()
    # decode-only batch of 4: 68.1 ms, 17.0 ms per token; 1,021 + 3 tokens: 0.21 ms per token
    assert mixed.ms_per_token.iloc[0] == pytest.approx(17.03, abs=0.01)
    assert mixed.ms_per_token.iloc[1] == pytest.approx(0.2125, abs=1e-4)
    # most of the decode step is neither linear layers nor attention
    assert mixed.other_ms.iloc[0] == pytest.approx(68.12 - 25.50 - 3.00, abs=0.01)
    ov = ms.sarathi_chunking_overhead().set_index(["prompt", "chunk"]).overhead
    assert ov[(4095, 512)] == pytest.approx(0.189, abs=1e-3) and ov[(4095, 1024)] == pytest.approx(0.202, abs=1e-3)
    assert ms.sarathi_chunking_overhead().chunk.isna().sum() == 4          # one unchunked row a prompt
    assert set(ms.SOURCES) == {"sarathi_mixed_batch", "sarathi_chunking_overhead", "sarathi_prefill",
                               "sarathi_decode"}
    assert all("02d2567" in s and "PCIe" in s for s in ms.SOURCES.values())


@needs_files
def test_rows_equal_the_files():
    mixed = pd.read_csv(SHARED / "mixed_batch_yi34b_tp2_a100pcie.csv")
    ours = ms.sarathi_mixed_batch()
    assert list(ours.step_ms) == list(mixed.batch_execution_time)
    assert list(ours.linear_ms) == list(mixed.linear) and list(ours.attention_ms) == list(mixed.attention)
    ch = pd.read_csv(SHARED / "chunking_overhead_yi34b_tp2_a100pcie.csv")
    o = ms.sarathi_chunking_overhead()
    assert list(o.prompt) == list(ch.prefill_length) and list(o.prefill_ms) == list(ch.prefill_execution_time)
    assert list(o.relative) == list(ch.prefill_execution_time_relative)
    pre = pd.read_csv(SHARED / "prefill_per_token_yi34b_tp2_a100pcie.csv")
    assert list(ms.sarathi_prefill().step_s) == list(pre.batch_execution_time)
    assert list(ms.sarathi_prefill().tokens) == list(pre.batch_num_prefill_tokens)
    dec = pd.read_csv(SHARED / "decode_per_token_yi34b_tp2_a100pcie.csv")
    assert list(ms.sarathi_decode().step_s) == list(dec.batch_execution_time)
    assert list(ms.sarathi_decode().batch) == list(dec.batch_size.astype(int))
