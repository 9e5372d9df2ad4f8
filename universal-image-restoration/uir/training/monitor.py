"""What a training run reports: the text log (train.log and the console) and, with
`use_tb_logger: true`, TensorBoard scalars through torch's own SummaryWriter in
<experiment>/tb_logger (the reference's folder name): `loss` and `lr` every print_freq steps,
`psnr` and `ssim` at every validation (the reference logs `loss` and `psnr`)."""
from __future__ import annotations

import logging
from pathlib import Path

TB_FOLDER = "tb_logger"
TB_PACKAGE = "tensorboard"


class _TqdmHandler(logging.Handler):
    """Log records printed with tqdm.write, so that they do not break the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(self.format(record))


def attach_log(logger: logging.Logger, log_file: Path, console: bool) -> list[logging.Handler]:
    """Send `logger`'s records to `log_file` (appended) and, if `console`, to the terminal."""
    logger.setLevel(logging.INFO)
    logger.propagate = False
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers: list[logging.Handler] = [logging.FileHandler(log_file, encoding="utf-8")]
    if console:
        handlers.append(_TqdmHandler())
    for h in handlers:
        h.setFormatter(fmt)
        logger.addHandler(h)
    return handlers


def detach_log(logger: logging.Logger, handlers: list[logging.Handler]) -> None:
    for h in handlers:
        logger.removeHandler(h)
        h.close()


def summary_writer_class():
    """torch.utils.tensorboard.SummaryWriter; ImportError when the tensorboard package is absent."""
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter


class Scalars:
    """TensorBoard scalars when asked for and available; otherwise nothing (after one log line)."""

    def __init__(self, folder: Path, enabled: bool, logger: logging.Logger):
        self.writer = None
        if not enabled:
            return
        try:
            writer_class = summary_writer_class()
        except ImportError:
            logger.warning(f"use_tb_logger: true, but TensorBoard logging needs the {TB_PACKAGE} package, which is "
                           f"not installed (pip install {TB_PACKAGE}); training goes on without TensorBoard events")
            return
        path = folder / TB_FOLDER
        self.writer = writer_class(log_dir=str(path))
        logger.info(f"TensorBoard events go to {path} (view them with: tensorboard --logdir {path})")

    def add(self, step: int, **values: float) -> None:
        if self.writer is None:
            return
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
