"""Shared fixtures. `import hseg_mm` first: it applies the shims mmseg needs here."""
import os

import hseg_mm  # noqa: F401
import pytest

from hseg_mm.hierarchy import ClassHierarchy

# A 4-level tree whose label ids are shuffled against the tree order; the expected
# values in the tests are worked out by hand from this picture:
#   ground(road=0, grass=5) | thing(vehicle(car(sedan=1, truck=6), bike=4), person=2) | sky=3
FOUR_LEVEL_TREE = dict(
    sky=3,
    ground=dict(road=0, grass=5),
    thing=dict(vehicle=dict(car=dict(sedan=1, truck=6), bike=4), person=2))


@pytest.fixture
def person_tree() -> ClassHierarchy:
    return ClassHierarchy('pascal_person_part')


@pytest.fixture
def four_level_tree() -> ClassHierarchy:
    return ClassHierarchy(FOUR_LEVEL_TREE)


def pytest_configure(config):
    # Third-party deprecation noise (torch.jit in mmengine/mmcv, mmseg's 0.x aliases);
    # our own warnings still show.
    for line in ('ignore::DeprecationWarning:torch.*',
                 'ignore:.*torch.jit.*:DeprecationWarning',
                 'ignore:``build_loss`` would be deprecated:UserWarning',
                 'ignore:Fail to import ``MultiScaleDeformableAttention``:UserWarning'):
        config.addinivalue_line('filterwarnings', line)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With HSEG_REQUIRE_TIMM=1 (make test-gpu-stack) a test skipped for want of timm fails:
    that stack installs timm, so such a skip would hide a broken import."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get('HSEG_REQUIRE_TIMM') == '1' \
            and 'timm' in str(report.longrepr).lower():
        report.outcome = 'failed'
        report.longrepr = f'skipped where timm is required (HSEG_REQUIRE_TIMM=1): {report.longrepr}'
