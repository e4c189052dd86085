"""Every rule: code that must trigger it, and close variants that must not (false positives)."""

from __future__ import annotations

import textwrap

import pytest

from reproflow.checks import all_rules, check_source, get_rule
from reproflow.checks._context import ModuleContext


def codes(source: str) -> list[str]:
    return [f.code for f in check_source(textwrap.dedent(source), "mod.py")]


# (code, source that triggers it). Each source is a small, realistic module.
BAD: list[tuple[str, str]] = [
    # RPF101 Python's random
    ("RPF101", "import random\nx = random.random()\n"),
    ("RPF101", "from random import random\nx = random()\n"),
    ("RPF101", "from random import shuffle as sh\nitems = [1, 2]\nsh(items)\n"),
    ("RPF101", "import random as r\ndef f(xs):\n    return r.choice(xs)\n"),
    ("RPF101", "import random\nrng = random.Random()\n"),
    ("RPF101", "import random\nrandom.seed(0)\nrng = random.Random(None)\n"),
    ("RPF101", "import random, time\nrandom.seed(time.time())\nx = random.random()\n"),
    ("RPF101", "import random\nrandom.seed()\n"),
    # RPF102 numpy
    # a seeded task's seed covers that task (and helpers), not an unseeded task beside it
    ("RPF101", "from reproflow import repro_task\nimport random\n@repro_task(seed=7)\ndef a():\n    return random.random()\n@repro_task\ndef b():\n    return random.random()\n"),
    ("RPF101", "from reproflow import repro_task\nimport random\n@repro_task(seed=7)\ndef a():\n    return 1\nX = random.random()\n"),
    ("RPF102", "from reproflow import repro_task\nimport numpy as np\n@repro_task(seed=7)\ndef a():\n    return np.random.rand()\n@repro_task\ndef b():\n    return np.random.rand()\n"),
    ("RPF102", "import numpy as np\nx = np.random.rand(3)\n"),
    ("RPF102", "import numpy\nx = numpy.random.normal(0, 1, 10)\n"),
    ("RPF102", "from numpy import random as npr\nx = npr.randint(0, 9)\n"),
    ("RPF102", "from numpy.random import shuffle\nshuffle([1, 2])\n"),
    ("RPF102", "import numpy as np\nrng = np.random.default_rng()\n"),
    ("RPF102", "import numpy as np\nnp.random.seed(1)\nrng = np.random.default_rng()\n"),
    ("RPF102", "from numpy.random import default_rng\nrng = default_rng(None)\n"),
    ("RPF102", "import numpy as np, time\nrng = np.random.default_rng(int(time.time()))\n"),
    ("RPF102", "import numpy as np, os\ns = int.from_bytes(os.urandom(4), 'big')\nrng = np.random.default_rng(s)\n"),
    ("RPF102", "import numpy as np\nrs = np.random.RandomState()\n"),
    # RPF103 torch
    ("RPF103", "import torch\nx = torch.rand(3)\n"),
    ("RPF103", "import torch.nn as nn\nlayer = nn.Linear(3, 4)\n"),
    ("RPF103", "import torch\nfrom torch import nn\nmodel = nn.Sequential(nn.Conv2d(1, 8, 3))\n"),
    ("RPF103", "import torch\nw = torch.empty(3, 5)\ntorch.nn.init.xavier_uniform_(w)\n"),
    ("RPF103", "import torch\nfrom torch.utils.data import DataLoader\nloader = DataLoader([1, 2], shuffle=True)\n"),
    ("RPF103", "import torch\nw = torch.empty(3)\nw.normal_()\n"),
    # RPF104 tensorflow
    ("RPF104", "import tensorflow as tf\nx = tf.random.normal([3])\n"),
    ("RPF104", "from tensorflow import keras\nlayer = keras.layers.Dense(4)\n"),
    ("RPF104", "import tensorflow as tf\nds = tf.data.Dataset.range(10)\nds = ds.shuffle(5)\n"),
    ("RPF104", "import tensorflow as tf\ng = tf.random.Generator.from_non_deterministic_state()\n"),
    # RPF105 jax
    ("RPF105", "import jax, time\nkey = jax.random.PRNGKey(int(time.time()))\n"),
    ("RPF105", "import jax\nimport os\nkey = jax.random.key(int.from_bytes(os.urandom(4), 'little'))\n"),
    ("RPF105", "from jax import random\nimport time\ndef f():\n    s = time.time_ns()\n    return random.PRNGKey(s)\n"),
    ("RPF105", "import jax, numpy as np\nkey = jax.random.PRNGKey(np.random.randint(1000))\n"),
    # RPF201 wall clock into outputs
    ("RPF201", "from datetime import datetime\nfrom prefect import task\n@task\ndef f():\n    return {'at': datetime.now().isoformat()}\n"),
    ("RPF201", "import datetime as dt\nfrom reproflow import repro_task\n@repro_task\ndef f(x):\n    stamp = dt.datetime.utcnow()\n    rec = {'x': x}\n    rec['stamp'] = stamp\n    return rec\n"),
    ("RPF201", "import time\ndef save(path, data):\n    now = time.time()\n    with open(path, 'w') as fh:\n        fh.write(f'{data} {now}')\n"),
    ("RPF201", "import time\nimport pandas as pd\ndef save(df, out):\n    df['loaded_at'] = time.time()\n    df.to_csv(out)\n"),
    ("RPF201", "from datetime import date\nimport json\ndef save(obj, fh):\n    json.dump({'day': str(date.today()), **obj}, fh)\n"),
    ("RPF201", "from datetime import datetime\nfrom pathlib import Path\ndef save(text):\n    out = Path(f'report-{datetime.now():%Y%m%d}.txt')\n    out.write_text(text)\n"),
    ("RPF201", "import time\nfrom prefect import flow\ndef stamp():\n    return time.time_ns()\n@flow\ndef run():\n    return [stamp()]\n"),
    ("RPF201", "import time\nfrom prefect import task\n@task\ndef rows():\n    for i in range(3):\n        yield (i, time.time())\n"),
    ("RPF201", "import time\nfrom reproflow import repro_task\ndef f():\n    return time.time()\nf_task = repro_task(seed=1)(f)\n"),
    # RPF301 machine paths
    ("RPF301", "import pandas as pd\ndf = pd.read_csv('/home/alice/data/raw.csv')\n"),
    ("RPF301", "DATA = '/Users/bob/Desktop/x.parquet'\n"),
    ("RPF301", "DATA = r'C:\\\\Users\\\\carol\\\\data.csv'\n"),
    ("RPF301", "DATA = 'D:/datasets/images'\n"),
    ("RPF301", "from pathlib import Path\nDATA = Path('~/data').expanduser()\n"),
    ("RPF301", "import os\nDATA = os.path.expanduser('~/data')\n"),
    ("RPF301", "from pathlib import Path\nDATA = Path.home() / 'data'\n"),
    ("RPF301", "OUT = '/mnt/shared/project/out'\n"),
    ("RPF301", "OUT = '/data'\nCSV = '/raw.csv'\n"),
    ("RPF301", "from pathlib import Path\nOUT = Path('/experiments/run1')\n"),
    ("RPF301", "with open('/experiments/run1/log', 'w') as fh:\n    pass\n"),
    ("RPF301", "user = 'x'\nOUT = f'/home/{user}/out'\n"),
    # RPF202 a format that records the clock, written by a call that puts it there
    ("RPF202", "import gzip\ndef save(p, data):\n    with gzip.open(p, 'wt') as fh:\n        fh.write(data)\n"),
    ("RPF202", "import gzip\ndef save(p, data):\n    with gzip.GzipFile(p, mode='wb') as fh:\n        fh.write(data)\n"),
    ("RPF202", "import gzip\nblob = gzip.compress(b'x')\n"),
    ("RPF202", "import pandas as pd\ndef save(df):\n    df.to_csv('out/table.csv.gz', index=False)\n"),
    ("RPF202", "def save(df, out):\n    df.to_csv(out / 'table.csv.zip')\n"),
    ("RPF202", "import zipfile\ndef pack(p, rows):\n    with zipfile.ZipFile(p, 'w') as zf:\n        zf.writestr('rows.csv', rows)\n"),
    ("RPF202", "import shutil\nshutil.make_archive('bundle', 'zip', 'results')\n"),
    ("RPF202", "import matplotlib.pyplot as plt\ndef plot(out):\n    plt.plot([1, 2])\n    plt.savefig(f'{out}/fig.pdf')\n"),
    ("RPF202", "def plot(fig, out):\n    fig.savefig(out, format='svg')\n"),
    # RPF302 a C library's write at a path fixed in a task
    ("RPF302", "import torch\nfrom pathlib import Path\nfrom reproflow import repro_task\nMODEL = Path('models') / 'net.pt'\n"
               "@repro_task\ndef train(n: int) -> None:\n    torch.save({'n': n}, MODEL)\n"),
    ("RPF302", "import pandas as pd\nfrom prefect import task\n@task\ndef save(df):\n    df.to_parquet('out/t.parquet')\n"),
    ("RPF302", "from pathlib import Path\nfrom reproflow import repro_task\n@repro_task\ndef save(df, name: str):\n"
               "    dest = Path('out') / f'{name}.feather'\n    df.to_feather(dest)\n"),
    ("RPF302", "import h5py\nfrom reproflow import repro_task\n@repro_task\ndef save(x):\n"
               "    with h5py.File('out/data.h5', 'w') as fh:\n        fh['x'] = x\n"),
    ("RPF302", "import pyarrow.parquet as pq\nfrom reproflow import repro_task\n@repro_task\ndef save(t):\n"
               "    pq.write_table(t, where=f'out/{len(t)}.parquet')\n"),
    # RPF401 environment
    ("RPF401", "import os\nkey = os.environ['API_KEY']\n"),
    ("RPF401", "import os\nkey = os.getenv('DATA_DIR')\n"),
    ("RPF401", "import os\nkey = os.environ.get('DATA_DIR')\n"),
    ("RPF401", "from os import environ\nkey = environ['DATA_DIR']\n"),
    ("RPF401", "from os import getenv as ge\nkey = ge('DATA_DIR')\n"),
    # RPF501 network
    ("RPF501", "import requests\ndef fetch(url):\n    return requests.get(url).content\n"),
    ("RPF501", "import pandas as pd\ndf = pd.read_csv('https://example.org/data.csv')\n"),
    ("RPF501", "import pandas as pd\nURL = 'https://example.org/data.csv'\ndef load():\n    return pd.read_csv(URL)\n"),
    ("RPF501", "from urllib.request import urlopen\nbody = urlopen('http://example.org/x').read()\n"),
    ("RPF501", "import fsspec\nfs = fsspec.filesystem('https')\n"),
    ("RPF501", "import pooch\npath = pooch.retrieve('https://example.org/x.zip', known_hash=None)\n"),
    ("RPF501", "from datasets import load_dataset\nds = load_dataset('imdb')\n"),
    ("RPF501", "from transformers import AutoModel\nm = AutoModel.from_pretrained('bert-base-uncased')\n"),
    # RPF601 unordered iteration
    ("RPF601", "import os\nfor name in os.listdir('data'):\n    print(name)\n"),
    ("RPF601", "import glob\nframes = [open(p).read() for p in glob.glob('data/*.csv')]\ntext = ''.join(frames)\n"),
    ("RPF601", "import glob\ndef f():\n    return [open(p).read() for p in glob.glob('data/*.csv')]\n"),
    # a list built in listing order and handed to an order-sensitive call (issue 17: docs' own Bad example)
    ("RPF601", "import glob\nimport pandas as pd\nframes = [pd.read_csv(p) for p in glob.glob('data/*.csv')]\ndf = pd.concat(frames)\n"),
    ("RPF601", "from pathlib import Path\ndef f(d: Path):\n    out = []\n    for p in d.rglob('*'):\n        out.append(p)\n    return out\n"),
    ("RPF601", "from pathlib import Path\ndef load(d: Path):\n    return [p.read_text() for p in d.glob('*.txt')]\n"),
    ("RPF601", "from pathlib import Path\nfiles = list(Path('data').iterdir())\nfirst = files[0]\n"),
    ("RPF601", "import os\nfiles = os.listdir('data')\nfor f in files:\n    print(f)\n"),
    ("RPF601", "import os\nfor root, dirs, files in os.walk('data'):\n    for f in files:\n        print(f)\n"),
    ("RPF601", "names = {'b', 'a'}\nfor n in names:\n    print(n)\n"),
    ("RPF601", "def f(xs):\n    return ','.join(set(xs))\n"),
    ("RPF601", "def f(a: set[str]):\n    return [x.upper() for x in a]\n"),
    ("RPF601", "def f(xs, ys):\n    both = set(xs) & set(ys)\n    return list(both)\n"),
    ("RPF601", "import os\ndef first(d):\n    return os.listdir(d)[0]\n"),
    ("RPF601", "def find(ids, want):\n    found = []\n    for i in set(ids):\n        if i.startswith(want):\n            found.append(i)\n            return i\n    return sorted(found)\n"),
    # RPF701 GPU nondeterminism
    ("RPF701", "import torch\ntorch.manual_seed(0)\nx = torch.ones(3).cuda()\n"),
    ("RPF701", "import torch\ntorch.manual_seed(0)\ndevice = torch.device('cuda')\n"),
    ("RPF701", "import torch\ntorch.manual_seed(0)\ndef f(m):\n    return m.to('cuda:0')\n"),
    ("RPF701", "import tensorflow as tf\ntf.random.set_seed(0)\nx = tf.constant([1.0])\n"),
    # RPF702 thread counts from the machine
    ("RPF702", "import os\nos.environ['OMP_NUM_THREADS'] = str(os.cpu_count())\n"),
    ("RPF702", "import torch, multiprocessing\ntorch.manual_seed(0)\ntorch.set_num_threads(multiprocessing.cpu_count())\n"),
    ("RPF702", "from threadpoolctl import threadpool_limits\nimport os\nn = os.cpu_count()\nwith threadpool_limits(limits=n):\n    pass\n"),
]

# (code, source that must NOT trigger it): seeded, sorted, defaulted, relative variants.
GOOD: list[tuple[str, str]] = [
    # RPF202: a fixed time, reading, or a format with no clock
    ("RPF202", "import gzip\ndef load(p):\n    with gzip.open(p, 'rt') as fh:\n        return fh.read()\n"),
    ("RPF202", "import gzip\ndef save(p, data):\n    with gzip.GzipFile(p, 'wb', mtime=0) as fh:\n        fh.write(data)\n"),
    ("RPF202", "import gzip\nblob = gzip.compress(b'x', mtime=0)\n"),
    ("RPF202", "def save(df):\n    df.to_csv('out/t.csv.gz', compression={'method': 'gzip', 'mtime': 0})\n"),
    ("RPF202", "def save(df):\n    df.to_csv('out/table.csv')\n"),
    ("RPF202", "import zipfile\ndef pack(p, rows):\n    with zipfile.ZipFile(p, 'w') as zf:\n        zf.writestr(zipfile.ZipInfo('rows.csv', date_time=(1980, 1, 1, 0, 0, 0)), rows)\n"),
    ("RPF202", "def plot(fig):\n    fig.savefig('fig.png')\n"),
    ("RPF202", "def plot(fig):\n    fig.savefig('fig.pdf', metadata={'CreationDate': None})\n"),
    ("RPF202", "import os\nos.environ.setdefault('SOURCE_DATE_EPOCH', '0')\ndef plot(fig):\n    fig.savefig('fig.svg')\n"),
    # RPF302: the path is the task's parameter, or its folder; a read; a write through Python's
    # open (seen); a flow's body; a path from a helper (not followed)
    ("RPF302", "import torch\nfrom pathlib import Path\nfrom reproflow import repro_task\n@repro_task\n"
               "def train(n: int, out_dir: Path, dst: str) -> None:\n    torch.save({'n': n}, out_dir / 'net.pt')\n"
               "    torch.save({'n': n}, dst)\n"),
    ("RPF302", "import os\nfrom reproflow import repro_task\n@repro_task\ndef save(df, out_dir, cfg):\n"
               "    df.to_parquet(os.path.join(out_dir, 't.parquet'))\n    df.to_parquet(cfg.out / 't.parquet')\n"
               "    for p in [out_dir / 'a.parquet']:\n        df.to_parquet(p)\n"),
    ("RPF302", "import h5py\nfrom reproflow import repro_task\n@repro_task\ndef load():\n"
               "    with h5py.File('data/in.h5') as fh:\n        return fh['x'][()]\n"),
    ("RPF302", "from reproflow import repro_task\n@repro_task\ndef save(df):\n    df.to_csv('out/t.csv')\n"),
    ("RPF302", "from prefect import flow\n@flow\ndef body(df):\n    df.to_parquet('out/flow.parquet')\n"),
    ("RPF302", "from reproflow import repro_task\nfrom helpers import out_path\n@repro_task\ndef save(df):\n"
               "    df.to_parquet(out_path('t'))\n"),
    ("RPF302", "import pandas as pd\nOUT = 'out/t.parquet'\ndf = pd.DataFrame({'a': [1]})\ndf.to_parquet(OUT)\n"),
    ("RPF601", "import glob\nnames = [p.lower() for p in glob.glob('*.csv')]\nprint(len(names), sorted(names))\n"),
    ("RPF101", "import random\nrandom.seed(42)\nx = random.random()\n"),
    ("RPF101", "import random\nrng = random.Random(42)\nx = rng.random()\n"),
    ("RPF101", "import random\ndef f(seed):\n    rng = random.Random(seed)\n    return rng.choice([1, 2])\n"),
    ("RPF101", "import random\ndef f(random):\n    return random.random()\n"),
    ("RPF101", "from reproflow import repro_task\nimport random\n@repro_task(seed=7)\ndef f():\n    return random.random()\n"),
    ("RPF101", "from reproflow import repro_task\nimport random\ndef helper():\n    return random.random()\n@repro_task(seed=7)\ndef f():\n    return helper()\n"),
    ("RPF101", "from reproflow import repro_task\nimport random\ndef f():\n    return random.random()\nf_task = repro_task(f, seed=3)\n"),
    ("RPF101", "from reproflow import repro_task\nimport random\ndef f():\n    return random.random()\nf_task = repro_task(seed=3)(f)\n"),
    ("RPF103", "import torch\nfrom reproflow import repro_task\n@repro_task(seed=1)\ndef f():\n    return torch.rand(3)\n"),
    ("RPF101", "import random\nimport lightning\nlightning.seed_everything(1)\nx = random.random()\n"),
    ("RPF101", "import secrets\ntoken = secrets.token_hex(8)\n"),
    ("RPF102", "import numpy as np\nrng = np.random.default_rng(42)\nx = rng.random(3)\n"),
    ("RPF102", "import numpy as np\ndef f(seed: int):\n    rng = np.random.default_rng(seed)\n    return rng.normal(size=3)\n"),
    ("RPF102", "import numpy as np\nnp.random.seed(0)\nx = np.random.rand(3)\n"),
    ("RPF102", "import numpy as np\ndef f(rng):\n    return rng.random()\n"),
    ("RPF102", "from numpy.random import default_rng\nrng = default_rng(seed=3)\n"),
    ("RPF102", "import numpy as np\nx = np.zeros(3)\ny = np.random.SeedSequence(12345)\n"),
    ("RPF103", "import torch\ntorch.manual_seed(0)\nx = torch.rand(3)\nlayer = torch.nn.Linear(3, 4)\n"),
    ("RPF103", "import torch\ng = torch.Generator().manual_seed(0)\nx = torch.rand(3, generator=g)\n"),
    ("RPF103", "import torch\nx = torch.zeros(3)\nrelu = torch.nn.ReLU()\n"),
    ("RPF103", "import torch\nfrom torch.utils.data import DataLoader\nloader = DataLoader([1, 2], shuffle=False)\n"),
    ("RPF104", "import tensorflow as tf\ntf.random.set_seed(1)\nx = tf.random.normal([3])\n"),
    ("RPF104", "import tensorflow as tf\ntf.keras.utils.set_random_seed(1)\nlayer = tf.keras.layers.Dense(4)\n"),
    ("RPF104", "import tensorflow as tf\nds = tf.data.Dataset.range(10).shuffle(5, seed=1)\n"),
    ("RPF104", "import tensorflow as tf\nx = tf.random.stateless_normal([3], seed=[1, 2])\n"),
    ("RPF105", "import jax\nkey = jax.random.PRNGKey(0)\nk1, k2 = jax.random.split(key)\n"),
    ("RPF105", "import jax\ndef f(seed: int):\n    return jax.random.key(seed)\n"),
    ("RPF201", "import time\ndef f(x):\n    t0 = time.perf_counter()\n    y = x * 2\n    print('took', time.perf_counter() - t0)\n    return y\n"),
    ("RPF201", "import logging\nfrom datetime import datetime\nfrom prefect import task\nlog = logging.getLogger(__name__)\n@task\ndef f(x):\n    log.info('started %s', datetime.now())\n    print('at', datetime.now())\n    return x + 1\n"),
    ("RPF201", "import time\ndef wait(deadline):\n    while time.time() < deadline:\n        time.sleep(0.1)\n    return True\n"),
    ("RPF201", "import sys\nfrom datetime import datetime\ndef f(x):\n    sys.stderr.write(f'{datetime.now()}\\n')\n    print(datetime.now(), file=sys.stderr)\n    return x\n"),
    ("RPF201", "from datetime import datetime\ndef stamp():\n    return datetime.now().isoformat()\ndef f(x):\n    print(stamp())\n    return x\nf(1)\n"),
    ("RPF201", "from datetime import datetime\ndef f(as_of: datetime):\n    return as_of.isoformat()\n"),
    ("RPF201", "import time\ndef run_external():\n    t0 = time.time()\n    return {'wall_s': time.time() - t0}\n"),
    ("RPF301", "from pathlib import Path\nDATA = Path(__file__).parent / 'data' / 'raw.csv'\n"),
    ("RPF301", "DATA = 'data/raw.csv'\n"),
    ("RPF301", "def f(p):\n    return p.startswith('/home/')\n"),
    ("RPF301", "def f(base):\n    return base + '/api/v1/items'\n"),
    ("RPF301", "\"\"\"Reads /home/alice/x.csv in the docs only.\"\"\"\nX = 1\n"),
    ("RPF301", "NULL = '/dev/null'\nTMP = '/tmp/scratch'\nOS = '/etc/os-release'\n"),
    ("RPF301", "URL = 'https://example.org/home/alice/x.csv'\n"),
    ("RPF301", "import httpx\nc = httpx.Client(base_url='https://api.example.org')\nr = c.get('/v2/flows/filter')\nROUTE = '/runs/{run_id}'\nHEALTH = '/health'\nR = c.request('POST', '/flows/filter')\nROUTES = ['/flow_runs/filter', '/work_queues/x']\n"),
    ("RPF301", "import re\nPAT = re.compile('/home/[^/]+')\n"),
    ("RPF301", "import os\ndef f(user_path):\n    return os.path.expanduser(user_path)\n"),
    ("RPF301", "import os\nfrom pathlib import Path\nA = os.path.join(os.path.expanduser('~'), '.cache', 'x')\nB = Path.home() / '.config'\nC = '~/.local/share'\n"),
    ("RPF401", "import os\nkey = os.environ.get('DATA_DIR', 'data')\n"),
    ("RPF401", "import os\nkey = os.getenv('DATA_DIR', default='data')\n"),
    ("RPF401", "import os\nkey = os.getenv('DATA_DIR') or 'data'\n"),
    ("RPF401", "import os\nos.environ['MODE'] = 'x'\nif 'MODE' in os.environ:\n    pass\n"),
    ("RPF401", "import os\nos.environ.setdefault('MODE', 'x')\n"),
    ("RPF501", "import requests, hashlib\nEXPECTED = 'ab' * 32\ndef fetch(url):\n    body = requests.get(url).content\n    assert hashlib.sha256(body).hexdigest() == EXPECTED\n    return body\n"),
    ("RPF501", "import pandas as pd\ndf = pd.read_csv('data/raw.csv')\n"),
    ("RPF501", "import pandas as pd\ndf = pd.read_csv('s3://bucket/raw.csv')\n"),
    ("RPF501", "import pandas as pd\ndf = pd.read_csv('https://raw.githubusercontent.com/o/r/0123456789abcdef0123456789abcdef01234567/x.csv')\n"),
    ("RPF501", "import pooch\npath = pooch.retrieve('https://example.org/x.zip', known_hash='sha256:' + 'ab' * 32)\n"),
    ("RPF501", "from datasets import load_dataset\nds = load_dataset('imdb', revision='e6281661ce1c48d982bc483cf8a173c1bbeb5d31')\n"),
    ("RPF501", "import requests\nr = requests.post('https://example.org/api', json={})\n"),
    ("RPF601", "import os\nfor name in sorted(os.listdir('data')):\n    print(name)\n"),
    ("RPF601", "import glob\nframes = [open(p).read() for p in sorted(glob.glob('data/*.csv'))]\n"),
    ("RPF601", "from pathlib import Path\ndef load(d: Path):\n    return sorted(p.name for p in d.glob('*.txt'))\n"),
    ("RPF601", "import os\nfiles = os.listdir('data')\nfiles.sort()\nfor f in files:\n    print(f)\n"),
    ("RPF601", "import os\nfiles = os.listdir('data')\nfiles = sorted(files)\nfor f in files:\n    print(f)\n"),
    ("RPF601", "import os\nn = len(os.listdir('data'))\nhas = 'x.csv' in os.listdir('data')\nempty = not os.listdir('data')\n"),
    ("RPF601", "import os\nfor root, dirs, files in os.walk('data'):\n    dirs.sort()\n    for f in sorted(files):\n        print(f)\n"),
    ("RPF601", "import os\ndef f(d):\n    out = []\n    for root, dirs, files in os.walk(d):\n        dirs[:] = sorted(dirs)\n        for name in files:\n            if len(out) > 9:\n                return sorted(out)\n            out.append(name)\n    return sorted(out)\n"),
    ("RPF601", "names = {'b', 'a'}\nfor n in sorted(names):\n    print(n)\nok = 'a' in names\nn = len(names)\n"),
    ("RPF601", "for n in {1, 2, 3}:\n    print(n)\n"),
    ("RPF601", "def f(xs):\n    s = set(xs)\n    return {x.upper() for x in s}\n"),
    ("RPF601", "def f(xs):\n    return sum(x for x in set(xs))\n"),
    ("RPF601", "def f(fs):\n    return [p for p in fs.glob('*.csv')]\n"),
    ("RPF601", "from pathlib import Path\ndef f(d: Path):\n    out = []\n    for p in d.rglob('*'):\n        if p.is_file():\n            out.append(p.name)\n    return sorted(out)\n"),
    ("RPF601", "import os\ndef f(d):\n    names = [n for n in os.listdir(d) if n.endswith('.csv')]\n    return sorted(names)\n"),
    ("RPF701", "import torch\ntorch.manual_seed(0)\ntorch.use_deterministic_algorithms(True)\nx = torch.ones(3).cuda()\n"),
    ("RPF701", "import torch\ntorch.manual_seed(0)\ntorch.backends.cudnn.deterministic = True\nx = torch.ones(3).to('cuda')\n"),
    ("RPF701", "import torch\ntorch.manual_seed(0)\nx = torch.ones(3).to('cpu')\n"),
    ("RPF701", "import tensorflow as tf\ntf.random.set_seed(0)\ntf.config.experimental.enable_op_determinism()\nx = tf.constant([1.0])\n"),
    ("RPF702", "import torch\ntorch.manual_seed(0)\ntorch.set_num_threads(4)\n"),
    ("RPF702", "import os\nos.environ['OMP_NUM_THREADS'] = '1'\nprint(os.cpu_count())\n"),
]


def _id(case: tuple[str, str]) -> str:
    return f"{case[0]}:{case[1].splitlines()[-1][:40]}"


@pytest.mark.parametrize("case", BAD, ids=[_id(c) for c in BAD])
def test_rule_triggers(case: tuple[str, str]) -> None:
    """Each rule fires on code with the reproducibility problem it names."""
    code, source = case
    assert code in codes(source), check_source(source, "mod.py")


@pytest.mark.parametrize("case", GOOD, ids=[_id(c) for c in GOOD])
def test_rule_does_not_trigger(case: tuple[str, str]) -> None:
    """The fixed or harmless variant of the same code is not reported by that rule."""
    code, source = case
    assert code not in codes(source), check_source(source, "mod.py")


def test_every_rule_has_cases() -> None:
    """No rule ships without a triggering and a non-triggering test case."""
    rules = set(all_rules())
    assert rules == {c for c, _ in BAD}
    assert rules == {c for c, _ in GOOD}


def test_rule_runs_alone_with_one_signature() -> None:
    """A rule is a small callable: ModuleContext in, Findings out, no config involved."""
    ctx = ModuleContext.from_source("import random\nx = random.random()\n", "m.py")
    found = get_rule("RPF101")(ctx)
    assert [(f.code, f.line, f.col, f.path) for f in found] == [("RPF101", 2, 5, "m.py")]
    assert found[0].fix and found[0].severity == "error"
    assert get_rule("RPF601")(ctx) == []


def test_rules_are_documented() -> None:
    """Every rule carries a name, summary, rationale and fix, and appears in docs/checks.md."""
    from pathlib import Path

    docs = (Path(__file__).parents[2] / "docs" / "checks.md").read_text(encoding="utf-8")
    for code, rule in all_rules().items():
        assert rule.name and rule.summary and rule.rationale and rule.fix
        assert f"## {code}" in docs, code
        assert rule.name in docs


def test_seed_satisfies_only_its_own_library() -> None:
    """np.random.seed does not excuse an unseeded torch model, and vice versa."""
    found = codes("import numpy as np\nimport torch\nnp.random.seed(0)\nx = np.random.rand()\nm = torch.nn.Linear(2, 2)\n")
    assert "RPF103" in found and "RPF102" not in found


def test_clock_duration_with_time_time_is_reported_when_returned() -> None:
    """time.time() differences that end up in a task result are still wall-clock output."""
    src = "import time\nfrom prefect import task\n@task\ndef f():\n    t0 = time.time()\n    return {'secs': time.time() - t0}\n"
    assert "RPF201" in codes(src)


def test_finding_location_and_message() -> None:
    """Findings point at the exact call and quote the code."""
    [f] = check_source("import os\n\nx = 1; y = os.getenv('TOKEN_PATH')\n", "m.py")
    assert (f.code, f.line, f.col) == ("RPF401", 3, 12)
    assert "TOKEN_PATH" in f.message


def test_columns_count_characters_not_bytes() -> None:
    """A non-ASCII prefix on the line does not shift the reported column."""
    [f] = check_source("import random\nπ = 'é'; x = random.random()\n", "m.py")
    assert f.col == 14


def test_parse_error_is_one_finding() -> None:
    """A file that does not parse gives one RPF000 finding, never a crash."""
    [f] = check_source("def f(:\n", "broken.py")
    assert f.code == "RPF000" and f.severity == "error" and f.line == 1


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_KEYWORDS = {"if", "in", "is", "or", "as", "def", "for", "and", "not", "del", "try", "with", "from", "else", "elif",
             "None", "True", "False", "pass", "class", "while", "yield", "async", "await", "break", "raise", "return",
             "lambda", "global", "assert", "import", "except", "finally", "continue", "nonlocal", "match", "case"}  # fmt: skip
_identifiers = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda s: s not in _KEYWORDS and s not in {"numpy", "random", "print", "rng", "x"}
)


@settings(max_examples=60, deadline=None)
@given(alias=_identifiers, seed=st.integers(0, 2**32 - 1))
def test_alias_resolution_property(alias: str, seed: int) -> None:
    """Whatever name numpy is imported as, its global RNG is flagged and a seeded generator is not."""
    bad = f"import numpy as {alias}\nx = {alias}.random.rand(2)\n"
    good = f"import numpy as {alias}\nrng = {alias}.random.default_rng({seed})\nx = rng.random()\n"
    assert codes(bad) == ["RPF102"]
    assert codes(good) == []


@settings(max_examples=60, deadline=None)
@given(others=st.lists(st.sampled_from(sorted(all_rules())), max_size=3), spaces=st.sampled_from(["", " ", "  "]))
def test_inline_ignore_property(others: list[str], spaces: str) -> None:
    """An ignore comment silences exactly the codes it lists, however it is spaced."""
    listed = ",".join(others)
    src = f"import random\nx = random.random()  #{spaces}reproflow:{spaces}ignore[{listed}]\n"
    expected = [] if "RPF101" in others else ["RPF101"]
    assert codes(src) == expected
