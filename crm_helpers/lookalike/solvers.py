"""Small numpy solvers behind the lookalike models (no scikit-learn on a report's way).

- :func:`fit_logistic`: L2-penalised logistic regression by Newton's method, scikit-learn's
  ``LogisticRegression`` objective (the PU model).
- :func:`kmeans`: Lloyd's k-means with k-means++ starts (the ``centroids`` baseline).

Both are checked against scikit-learn or a planted answer in
``tests/lookalike/test_rank_statistics.py``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_logistic", "kmeans"]


def fit_logistic(
    Z: np.ndarray, y: np.ndarray, C: float, tol: float = 1e-10, max_iter: int = 100
) -> tuple[np.ndarray, float]:
    """L2-penalised logistic regression by Newton's method: ``(coef, intercept)``.

    Minimises ``C * sum_i logloss(y_i, z_i . w + b) + ||w||^2 / 2`` (the intercept is not
    penalised): scikit-learn's ``LogisticRegression(C=C)`` objective, solved to ``tol`` on
    the step (scikit-learn's lbfgs stops at 1e-4 on the gradient;
    ``tests/lookalike/test_rank_statistics.py`` compares the two). Plain numpy in float64:
    a handful of steps, each one weighted cross product of ``Z`` (33 x 33 for 32 features),
    and no scikit-learn import (~1 s in a fresh process) on the way of a report.
    """
    A = np.empty((len(Z), Z.shape[1] + 1))
    A[:, :-1] = Z
    A[:, -1] = 1.0
    y = np.asarray(y, dtype=np.float64)
    pen = np.ones(A.shape[1])
    pen[-1] = 0.0
    w = np.zeros(A.shape[1])

    def objective(w: np.ndarray, t: np.ndarray) -> float:
        # logloss = log(1 + exp(-t)) for y = 1, log(1 + exp(t)) for y = 0
        return float(C * np.logaddexp(0.0, np.where(y > 0, -t, t)).sum() + 0.5 * (pen * w) @ w)

    t = A @ w
    f = objective(w, t)
    for _ in range(max_iter):
        p = 0.5 * (1.0 + np.tanh(0.5 * t))  # the logistic, without overflow
        grad = C * (A.T @ (p - y)) + pen * w
        H = C * ((A * (p * (1.0 - p))[:, None]).T @ A) + np.diag(pen + 1e-12)
        step = np.linalg.solve(H, grad)
        a = 1.0
        while True:  # backtracking: Newton steps on a logistic loss rarely need it
            w_new = w - a * step
            t_new = A @ w_new
            f_new = objective(w_new, t_new)
            if f_new <= f + 1e-4 * a * (grad @ -step) or a < 1e-8:
                break
            a *= 0.5
        w, t, f = w_new, t_new, f_new
        if np.abs(a * step).max() < tol:
            break
    return w[:-1].copy(), float(w[-1])


def kmeans(
    Z: np.ndarray,
    k: int,
    n_init: int = 4,
    random_state: int = 0,
    max_iter: int = 300,
    sample_size: int = 2_000,
) -> np.ndarray:
    """Lloyd's k-means with k-means++ starts, best of ``n_init`` by inertia; centres (k, d).

    Above ``sample_size`` rows the runs are on a seeded uniform sample of that many, and the
    best centres then take one Lloyd step on all rows (every row assigned to its nearest
    centre, each centre the mean of its rows), so every row still counts.

    Plain numpy, no OpenMP: scikit-learn's ``KMeans`` spent seconds on 10k seeds when its
    OpenMP threads met the two audit threads on a loaded 2-core machine. Converged when
    the centres move less (squared, summed) than ``1e-4`` times the mean feature variance
    (scikit-learn's ``tol``); an empty cluster keeps its centre.
    """
    full = np.asarray(Z, dtype=np.float64)
    rng = np.random.default_rng(random_state)
    Z = full
    if len(full) > sample_size:
        Z = full[np.sort(rng.choice(len(full), sample_size, replace=False))]
    m = len(Z)
    tol = 1e-4 * float(Z.var(axis=0).mean())
    zz = (Z * Z).sum(axis=1)
    best, best_inertia = None, np.inf
    for _ in range(n_init):
        C = [Z[rng.integers(m)]]
        d2 = ((Z - C[0]) ** 2).sum(axis=1)
        for _ in range(1, k):
            total = d2.sum()
            i = rng.choice(m, p=d2 / total) if total > 0 else rng.integers(m)
            C.append(Z[i])
            d2 = np.minimum(d2, ((Z - Z[i]) ** 2).sum(axis=1))
        C = np.array(C)
        for _ in range(max_iter):
            D = zz[:, None] - 2.0 * (Z @ C.T) + (C * C).sum(axis=1)[None, :]
            label = D.argmin(axis=1)
            new = C.copy()
            for j in range(k):  # an empty cluster keeps its centre
                members = Z[label == j]
                if len(members):
                    new[j] = members.mean(axis=0)
            moved = float(((new - C) ** 2).sum())
            C = new
            if moved <= tol:
                break
        D = zz[:, None] - 2.0 * (Z @ C.T) + (C * C).sum(axis=1)[None, :]
        inertia = float(np.maximum(D.min(axis=1), 0).sum())
        if inertia < best_inertia:
            best, best_inertia = C, inertia
    if Z is not full:
        label = (-2.0 * (full @ best.T) + (best * best).sum(axis=1)[None, :]).argmin(axis=1)
        best = best.copy()
        for j in range(k):
            members = full[label == j]
            if len(members):
                best[j] = members.mean(axis=0)
    return best
