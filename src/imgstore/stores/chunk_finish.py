"""Finishing a full chunk of a store being written, on a background thread while the next chunk takes
frames: its writer closed, its last frames logged, its ``.npz`` index written, its frame log removed."""

from __future__ import annotations

import threading

from ..format.chunkindex import FrameLog, write_chunk_index


class ChunkFinish:
    """Finishing one written chunk: close its writer, log its last frames, write its ``.npz`` index,
    close its extra data, remove its frame log (in that order: a reader always finds every frame in
    the frame log or the index)."""

    def __init__(self, store: "ImgStore", writer, frame_log: FrameLog, extra, chunk_n: int,
                 frame_numbers: list, frame_times: list) -> None:
        self.store = store
        self.writer = writer
        self.frame_log = frame_log
        self.extra = extra
        self.chunk_n = chunk_n
        self.fn = frame_numbers
        self.ft = frame_times
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def run(self) -> None:
        try:
            s = self.store
            if self.writer is not None:
                self.writer.close()
            self.frame_log.log_upto(self.fn, self.ft, len(self.fn))
            write_chunk_index(s._storage, s._layout.index_base(self.chunk_n), self.fn, self.ft,
                              store_md=s._md.store)
            if self.extra is not None:
                self.extra.close()
            self.frame_log.close(remove=True)  # the .npz now holds it all: the original's layout
        except BaseException as e:  # noqa: BLE001 - raised by raise_if_failed
            self.error = e

    def start(self) -> None:
        # not a daemon: an interpreter that exits without close() still finishes the chunk
        self.thread = threading.Thread(target=self.run, name=f"imgstore-finish-chunk-{self.chunk_n}")
        self.thread.start()

    def done(self) -> bool:
        return self.thread is None or not self.thread.is_alive()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()

    def raise_if_failed(self) -> None:
        if self.error is not None:
            e, self.error = self.error, None
            raise e
