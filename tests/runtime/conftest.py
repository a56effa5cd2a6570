"""A small DAG model, as a user's `file.py:factory` spec, and plans that cut it."""
import textwrap

import pytest

FACTORY = textwrap.dedent('''
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Conv2d(3, 8, 3, padding=1)
            self.mid = nn.Sequential(nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
            self.head = nn.Linear(16 * 16 * 16, 10)

        def forward(self, x):
            e = self.enc(x)
            return self.head(torch.cat([e, self.mid(e)], dim=1).flatten(1))

    def make():
        torch.manual_seed(0)
        return Net().eval(), (torch.randn(1, 3, 16, 16),)
''')


@pytest.fixture
def model_spec(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(FACTORY)
    return f"{path}:make"
