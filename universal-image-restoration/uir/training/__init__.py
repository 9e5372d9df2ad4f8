"""uir.training: the IR-SDE training loop of `train.py`.

    from uir.training import load_train_options, Trainer
    options = load_train_options("options/train_demo.yml", [("train.niter", 100)])
    Trainer(options, resume=False).run()

- `options`: the YAML options validated into `TrainOptions`.
- `losses`: the objectives for fit_target noise (the reference's matching loss), data, velocity.
- `data`: the task folders, LQ/GT pairs read and checked; builds the demo set if asked.
- `stream`: the training items (crops, flips, times, noise), seeded per item; MD and in-memory sources.
- `checkpoints`: the experiment folder's weights files and training states (ours and the reference's).
- `monitor`: the text log and TensorBoard scalars.
- `validation`: validation as test.py restores (DA-CLIP contexts included).
- `schedule`: the optimizer and the learning rate of every step (the reference's schemes too).
- `ema`: the moving average of the weights that training saves as the model.
- `trainer`: the loop on one process or many (torchrun), and --resume.
"""
from uir.training.ema import EMA, ema_decay
from uir.training.losses import matching_targets, regression_loss, regression_target, train_step, training_loss
from uir.training.options import TrainOptions, load_train_options, parse_train_options
from uir.training.schedule import build_optimizer, learning_rate
from uir.training.trainer import ExperimentError, Trainer
from uir.training.validation import ValidationResult, validate

__all__ = [
    "EMA", "ExperimentError", "build_optimizer", "TrainOptions", "Trainer", "ema_decay", "learning_rate", "load_train_options",
    "matching_targets", "parse_train_options", "regression_loss", "regression_target", "train_step",
    "training_loss", "validate", "ValidationResult",
]
