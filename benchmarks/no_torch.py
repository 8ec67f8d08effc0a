"""Python source that, run first in an interpreter, makes it behave like a device install:
importing torch or any compress-only library fails. The tests prove with it that ``edge`` and
``targets`` need no torch, and bench_e2e measures the daemon's RSS under it."""

BLOCK_TORCH = """
import sys
class _BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'torchvision', 'timm', 'nncf', 'litert_torch'):
            raise ModuleNotFoundError(f'{name} is blocked: the device install has no torch',
                                      name=name)
sys.meta_path.insert(0, _BlockTorch())
"""
