"""uir.training: the IR-SDE training loop of `train.py`.

    from uir.training import load_train_options, Trainer
    options = load_train_options("options/train_demo.yml", [("train.niter", 100)])
    Trainer(options, resume=False).run()

- `options`: the YAML options validated into `TrainOptions`.
- `losses`: the objectives for fit_target noise (the reference's matching loss), data, velocity.
- `data`: in-memory LQ/GT pairs, random crops with flips/rotations; builds the demo set if asked.
- `schedule`: the optimizer and the learning rate of every step (the reference's schemes too).
- `ema`: the moving average of the weights that training saves as the model.
- `trainer`: the loop, validation, checkpoints and --resume.
"""
from uir.training.ema import EMA, ema_decay
from uir.training.losses import matching_targets, regression_loss, regression_target, training_loss
from uir.training.options import TrainOptions, load_train_options, parse_train_options
from uir.training.schedule import build_optimizer, learning_rate
from uir.training.trainer import ExperimentError, Trainer, train_step, validate

__all__ = [
    "EMA", "ExperimentError", "build_optimizer", "TrainOptions", "Trainer", "ema_decay", "learning_rate", "load_train_options",
    "matching_targets", "parse_train_options", "regression_loss", "regression_target", "train_step",
    "training_loss", "validate",
]
