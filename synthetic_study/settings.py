"""Names shared by the runner, the command line and the report: the settings every results line records,
the resume key, the grid's stages in the order they run, and the calibration of the blind alpha."""
import json

from synthetic_study.data import DATA_OPTIONS

#----------------------------------------------------------------------------

GRID_AXES = ('benchmark', 'model', 'K', 'seed')
STUDY_KEYS = ('n', 'samples', 'mean_mode', 'batch', 'l1_batch', 'lr', 'max_steps', 'eval_every', 'patience', 'min_delta', 'beta',
              'tau', 'eta', 'alpha_max', 'hidden', 'threshold')
DATA_KEYS = DATA_OPTIONS + ('support',)
ALPHA_KEYS = ('alpha_rule', 'alpha')  # per arm: 'none' (0), 'blind' (rule a), 'fixed' (--alpha), 'constrained' (rule b)
SETTING_KEYS = STUDY_KEYS + DATA_KEYS + ALPHA_KEYS
# Settings added after results were first written, with the value every line written before them had.
ADDED_KEYS = {'first_layer': 'support'}

ALL_ARMS = ('cg_vae', 'ivae_l1', 'cg_vae_nosparse', 'ivae', 'sparse_only', 'beta_vae', 'cg_vae_constrained')
# The grid for one n, in the order it runs: the positive control and the decision cells first.
STAGES = (
    ('positive control', 'sparse',   (40,),                     ('ivae',), range(5)),
    ('decision',         'sparse',   (2, 3, 4),                 ALL_ARMS, range(10)),
    ('decision: C',      'dense',    (2, 3, 4),                 ALL_ARMS, range(10)),
    ('large K',          'sparse',   (11, 20, 40),              ALL_ARMS, range(5)),
    ('rest of A',        'sparse',   (1, 6, 8),                 ALL_ARMS, range(5)),
    ('confirmation: A',  'sparse',   (8, 6),                    ('cg_vae', 'ivae_l1', 'cg_vae_nosparse', 'ivae', 'sparse_only'), range(5, 10)),
    ('rest of C',        'dense',    (1, 6, 8, 11, 20, 40),     ALL_ARMS, range(5)),
    ('D',                'nongauss', (1, 2, 3, 4, 6, 8, 11, 20, 40), ALL_ARMS, range(5)),
    ('B',                'hard',     (1, 2, 3, 4, 6, 8, 11, 20, 40), ALL_ARMS, range(5)),
    ('positive control: E', 'dense_first', (40,),           ('ivae',), range(5)),
    ('decision: E',      'dense_first', (3, 2, 4),          ALL_ARMS, range(10)),   # K = 3 first: A's gain is there at n = 5
)
DECISION_K = (2, 3, 4)  # the K of A (and C) the decision rule reads: the 'decision' stages, 10 seeds each
CONFIRM_K, CONFIRM_ALSO_K = 8, 6  # the K = 8 pattern of seeds 0-4 is confirmed on fresh seeds (docs/synthetic.md)
CONFIRM_SEEDS = tuple(range(5, 10))
CALIBRATION = dict(K=3, seeds=(100, 101, 102, 103, 104), alphas=(0.0, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0))
MAX_SEED = 10**8

#----------------------------------------------------------------------------

def with_added_keys(row: dict) -> dict:
    """A stored line with the settings added since it was written filled in (ADDED_KEYS)."""
    for k, v in ADDED_KEYS.items():
        row.setdefault(k, v)
    return row


def run_key(row: dict) -> str:
    """Resume key: the grid axes and every setting."""
    return json.dumps({k: row[k] for k in GRID_AXES + SETTING_KEYS}, sort_keys=True)

#----------------------------------------------------------------------------
