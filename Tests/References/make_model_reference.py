"""Writes model_reference.json: PyTorch float64 loss and gradients of the chapter's CNN and MLP on a fixed batch,
with parameters drawn exactly as mnist-dist draws them (numpy RandomState), for NNTests/ModelReferenceTests.swift.

Run: python make_model_reference.py > model_reference.json   (needs numpy and torch; CI only reads the output)
Every gradient is summarised by its sum, its L2 norm and 16 entries at fixed positions, to keep the file small."""
import json, numpy as np, torch, torch.nn.functional as F
torch.set_default_dtype(torch.float64)

def f32(a):  # mnist-dist stores parameters as Float: round the numpy draws the same way
    return torch.from_numpy(np.asarray(a, dtype=np.float32).astype(np.float64))

def batch(n):  # the synthetic images of the Swift test: ((i * 37) mod 256) / 255 over the flat batch
    i = np.arange(n * 784)
    return f32(((i * 37) % 256).astype(np.float32) / np.float32(255)).reshape(n, 1, 28, 28)

def summarise(name, g):
    flat = g.reshape(-1)
    idx = [int(k * (flat.numel() - 1) / 15) for k in range(16)]
    return {"name": name, "sum": float(flat.sum()), "norm": float(flat.norm()), "indices": idx,
            "values": [float(flat[k]) for k in idx]}

labels = torch.tensor([7, 2, 1, 0, 4, 1])
x = batch(6)
out = {"about": "PyTorch float64 loss and gradients for a 6-image synthetic batch, labels " + str(labels.tolist()),
       "torch_version": torch.__version__, "models": []}

# CNN, initialised as mnist-dist does: RandomState(seed).uniform(-1/sqrt(fan_in), +...) in layout order.
rng = np.random.RandomState(5)
layout = [("conv1.weight", (32, 1, 3, 3), 9), ("conv1.bias", (32,), 9), ("conv2.weight", (64, 32, 3, 3), 288),
          ("conv2.bias", (64,), 288), ("fc1.weight", (128, 9216), 9216), ("fc1.bias", (128,), 9216),
          ("fc2.weight", (10, 128), 128), ("fc2.bias", (10,), 128)]
p = {}
for name, shape, fan_in in layout:
    b = 1 / np.sqrt(fan_in)
    p[name] = f32(rng.uniform(-b, b, size=int(np.prod(shape)))).reshape(shape).requires_grad_()
h = F.relu(F.conv2d(x, p["conv1.weight"], p["conv1.bias"]))
h = F.relu(F.conv2d(h, p["conv2.weight"], p["conv2.bias"]))
h = F.max_pool2d(h, 2).flatten(1)
h = F.relu(F.linear(h, p["fc1.weight"], p["fc1.bias"]))
logp = F.log_softmax(F.linear(h, p["fc2.weight"], p["fc2.bias"]), dim=1)
loss = F.nll_loss(logp, labels)
loss.backward()
out["models"].append({"model": "cnn", "seed": 5, "loss": float(loss), "log_probabilities_row0": logp[0].tolist(),
                      "grads": [summarise(n, p[n].grad) for n, _, _ in layout]})

# MLP 784-1024-1024-10, the chapter's init 0.1 * randn from RandomState(0), the chapter's one-hot loss.
rng = np.random.RandomState(0)
params = []
for m, n in [(784, 1024), (1024, 1024), (1024, 10)]:
    params.append(f32(0.1 * rng.randn(m, n)).requires_grad_())
    params.append(f32(0.1 * rng.randn(n)).requires_grad_())
a = x.reshape(6, 784)
for w, b in zip(params[0:4:2], params[1:4:2]):
    a = torch.tanh(a @ w + b)
logits = a @ params[4] + params[5]
logp = logits - torch.logsumexp(logits, dim=1, keepdim=True)
loss = -(logp * F.one_hot(labels, 10)).sum(1).mean()
loss.backward()
names = ["W1", "b1", "W2", "b2", "W3", "b3"]
out["models"].append({"model": "mlp", "seed": 0, "loss": float(loss), "log_probabilities_row0": logp[0].tolist(),
                      "grads": [summarise(n, t.grad) for n, t in zip(names, params)]})
print(json.dumps(out, indent=1))
