"""deg.figs.ethovideo: the Videos 1-9 renderer on small hand-made frames and ethograms, and a real MP4
written with PyAV and decoded back."""
from __future__ import annotations

import numpy as np
import pytest

from deg.data.video import read_video, video_info
from deg.figs import ethovideo as ev

BEHAVIOURS = ["background", "walk", "groom"]
T, SPAN = 30, 10


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, size=(T, 6, 8, 3), dtype=np.uint8)
    states = np.repeat(rng.integers(0, 3, size=T), 1)[:T]
    labels = np.eye(3, dtype=np.int8)[states]
    labels[5] = -1                                             # one unlabelled frame
    preds = np.roll(labels.clip(0, 1), 2, axis=0)
    return frames, {"human": labels, "model": preds}


def _render(chunk=7, **kw):
    frames, eth = _inputs()
    layout, chunks = ev.render(frames, eth, BEHAVIOURS, span=SPAN, chunk=chunk, **kw)
    return frames, eth, layout, np.concatenate(list(chunks))


def test_ethogram_image_cells():
    colours = ev.behaviour_colours(2)
    img = ev.ethogram_image(np.array([[1, 0], [0, -1], [1, 1]]), colours, row_h=2, col_w=3)
    assert img.shape == (4, 9, 3)
    assert (img[0:2, 0:3] == colours[0]).all()                 # behaviour 0 present at frame 0
    assert (img[2:4, 0:3] == ev.OFF).all()                     # behaviour 1 absent at frame 0
    assert (img[2:4, 3:6] == ev.UNLABELLED).all()              # unlabelled
    assert (img[2:4, 6:9] == colours[1]).all()
    with pytest.raises(ev.EthoVideoError):
        ev.ethogram_image(np.zeros((3, 3)), colours, 2, 3)


def test_window_starts_and_choose_window():
    starts = ev.window_starts(10, 4)
    assert starts.tolist() == [0, 0, 0, 1, 2, 3, 4, 5, 6, 6]
    assert ev.window_starts(3, 10).tolist() == [0, 0, 0]
    labels = np.zeros((100, 2), np.int8)
    labels[60:70:2, 1] = 1                                     # all the changes lie in frames 60-70
    start = ev.choose_window(labels, 20)
    assert 50 <= start <= 61 and ev.choose_window(labels, 200) == 0


def test_render_frame_count_size_and_raw_frames():
    frames, _, layout, out = _render()
    assert out.shape == (T, layout.height, layout.width, 3) and out.dtype == np.uint8
    assert layout.height % 2 == 0 and layout.width % 2 == 0
    s = layout.scale
    video = out[:, layout.video_y:layout.video_y + layout.video_h, layout.video_x:layout.video_x + layout.video_w]
    assert (video[:, ::s, ::s] == frames).all()                # integer upscaling of the raw frames


def _cursor_columns(out, layout, frame, block=0):
    """Window columns whose left edge carries the black cursor line through the block's rows."""
    y0, y1 = layout.block_y[block], layout.block_y[block] + layout.block_h
    black = (out[frame, y0:y1] == 0).all(axis=(0, 2))          # columns black over the whole block
    xs = np.nonzero(black)[0]
    return sorted({(x + 1 - layout.gutter) // layout.col_w for x in xs if (x + 1 - layout.gutter) % layout.col_w == 0})


def test_cursor_moves_then_window_scrolls():
    _, eth, layout, out = _render()
    cursors = [_cursor_columns(out, layout, t)[0] for t in range(T)]
    starts = ev.window_starts(T, SPAN)
    assert cursors == (np.arange(T) - starts).tolist()         # box on the current frame's column
    assert cursors[:SPAN // 2] == list(range(SPAN // 2))       # moves at the start
    assert len(set(cursors[SPAN // 2: T - SPAN // 2])) == 1    # stays centred while the window scrolls
    assert cursors[-1] == SPAN - 1


def test_cells_show_the_labels_of_the_visible_window():
    _, eth, layout, out = _render()
    colours = ev.behaviour_colours(3)
    starts = ev.window_starts(T, SPAN)
    for t in (0, 12, T - 1):
        for block, labels in enumerate(eth.values()):
            for col in range(SPAN):
                frame = starts[t] + col
                for k in range(3):
                    y, x = layout.cell_centre(block, k, col)
                    want = colours[k] if labels[frame, k] == 1 else ev.UNLABELLED if labels[frame, k] < 0 else ev.OFF
                    assert (out[t, y, x] == want).all(), (t, block, col, k)


def test_frame_counter_changes_with_the_frame():
    _, _, layout, out = _render(first_frame=117)
    y, x = layout.counter_y, layout.counter_x
    region = out[:, y:y + 5 * layout.digit_scale, x:x + 3 * 4 * layout.digit_scale]
    dark = (region == 0).all(axis=-1)
    assert dark[0].any()
    assert not (dark[0] == dark[1]).all()                      # 117 -> 118
    assert not (dark[1] == dark[3]).all()                      # 118 -> 120


def test_mismatched_inputs_are_errors():
    frames, eth = _inputs()
    with pytest.raises(ev.EthoVideoError, match="model"):
        ev.render(frames, {"human": eth["human"], "model": eth["model"][:-1]}, BEHAVIOURS)
    with pytest.raises(ev.EthoVideoError, match="uint8"):
        ev.render(frames.astype(float), eth, BEHAVIOURS)


def test_write_video_decodes_to_the_rendered_frames(tmp_path):
    frames, eth = _inputs()
    path, layout = ev.write_ethogram_video(tmp_path / "v.mp4", frames, eth, BEHAVIOURS, fps=10.0, span=SPAN)
    info = video_info(path)
    assert info.n_frames == T and (info.height, info.width) == (layout.height, layout.width)
    decoded = read_video(path)
    rendered = np.concatenate(list(ev.render(frames, eth, BEHAVIOURS, span=SPAN)[1]))
    assert np.abs(decoded.astype(int) - rendered).mean() < 6    # lossy H.264, same picture
    still = ev.still(frames, eth, BEHAVIOURS, 12, span=SPAN)
    assert (still == rendered[12]).all()
    table = ev.ethogram_table(eth, BEHAVIOURS, first_frame=100)
    assert len(table) == 2 * T * 3 and table.frame.min() == 100
    assert table[(table.source == "human") & (table.frame == 105)].value.tolist() == [-1, -1, -1]
