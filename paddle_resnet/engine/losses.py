"""Training losses."""
import paddle
import paddle.nn.functional as F


def label_smoothed_cross_entropy(logits, labels, epsilon: float):
    if epsilon == 0:
        return F.cross_entropy(logits, labels)
    # Szegedy et al. 2016: mix the one-hot target with the uniform distribution.
    log_probs = F.log_softmax(logits, axis=1)
    nll = -paddle.take_along_axis(log_probs, labels.unsqueeze(1), axis=1).squeeze(1)
    return ((1 - epsilon) * nll - epsilon * log_probs.mean(axis=1)).mean()
