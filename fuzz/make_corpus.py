#!/usr/bin/python3
"""Regenerate the fuzz seed corpora in fuzz/corpus/ from the fixtures.

Run with Debian's /usr/bin/python3 (stdlib + python3-pil):
    /usr/bin/python3 fuzz/make_corpus.py [FIXTURES_DIR]

Every seed is small (a few KiB at most). Seeds are derived from files generated
for this project (tiny checkpoints, their configs, synthetic images, tokenizer
test cases); third-party files (vocabularies, tokenizer configs, photos) are
never copied. Files under fuzz/corpus/*/regress-* are crash reproducers found by
fuzzing and are kept as they are.
"""
import io
import json
import os
import struct
import sys

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, '..', '..', 'shared', 'fixtures')
OUT = os.path.join(HERE, 'corpus')


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def fixture(rel):
    with open(os.path.join(FIX, rel), 'rb') as f:
        return f.read()


# ---------------------------------------------------------------- safetensors
DT = {'F64': 'd', 'F32': 'f', 'F16': 'e', 'I64': 'q', 'I32': 'i', 'I16': 'h', 'I8': 'b', 'U8': 'B', 'BOOL': '?'}


def st_file(tensors, meta=None, pad=8):
    """tensors: list of (name, dtype, shape, values or raw bytes)."""
    hdr, blobs, off = {}, [], 0
    if meta is not None:
        hdr['__metadata__'] = meta
    for name, dt, shape, vals in sorted(tensors, key=lambda t: t[0]):
        if isinstance(vals, bytes):
            raw = vals
        elif dt == 'BF16':
            raw = b''.join(struct.pack('<f', v)[2:] for v in vals)
        else:
            raw = struct.pack('<%d%s' % (len(vals), DT[dt]), *vals)
        hdr[name] = {'dtype': dt, 'shape': shape, 'data_offsets': [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(hdr, separators=(',', ':')).encode()
    h += b' ' * ((-len(h)) % pad)
    return struct.pack('<Q', len(h)) + h + b''.join(blobs)


def safetensors_seeds():
    raw = fixture('minilm-tiny/model.safetensors')
    n = struct.unpack('<Q', raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    meta = hdr.pop('__metadata__', {'format': 'pt'})
    # two real tensors with their real values
    small = []
    for name in ('embeddings.LayerNorm.bias', 'embeddings.LayerNorm.weight'):
        a, b = hdr[name]['data_offsets']
        vals = list(struct.unpack('<%df' % ((b - a) // 4), raw[8 + n + a:8 + n + b]))
        small.append((name, 'F32', hdr[name]['shape'], vals))
    put('fuzz_safetensors', 'minilm_layernorm_f32.safetensors', st_file(small, meta))
    vals = small[1][3][:8]
    put('fuzz_safetensors', 'f16_bf16_f64.safetensors', st_file([
        ('h', 'F16', [2, 4], vals), ('b', 'BF16', [8], vals), ('d', 'F64', [1, 2, 2, 2], vals)], {'format': 'pt'}))
    put('fuzz_safetensors', 'ints.safetensors', st_file([
        ('embeddings.position_ids', 'I64', [1, 8], list(range(8))), ('i32', 'I32', [3], [-1, 0, 2**31 - 1]),
        ('i16', 'I16', [2], [-2, 7]), ('i8', 'I8', [2], [-128, 127]), ('u8', 'U8', [3], [0, 1, 255]),
        ('mask', 'BOOL', [2], [True, False])]))
    put('fuzz_safetensors', 'empty_and_scalar.safetensors', st_file([
        ('empty', 'F32', [0, 4], b''), ('scalar', 'F32', [], [3.5]), ('z', 'F16', [1, 0], b'')], {}))
    put('fuzz_safetensors', 'no_tensors.safetensors', st_file([], {'format': 'pt', 'k': 'v'}))
    put('fuzz_safetensors', 'unaligned_header.safetensors', st_file(small[:1], None, pad=1))
    # the real tensor names of minilm-tiny with every shape shrunk, so mutations
    # start from a realistic header
    shrunk = []
    for name, t in hdr.items():
        shape = [1] * len(t['shape'])
        cnt = 1
        dt = t['dtype']
        shrunk.append((name, dt, shape, [1] * cnt if dt != 'F32' else [0.5] * cnt))
    put('fuzz_safetensors', 'minilm_names_shrunk.safetensors', st_file(shrunk, meta))
    # the real header in front of too little data (fails: mutations may fix it)
    put('fuzz_safetensors', 'minilm_header_truncated.safetensors', raw[:8 + n + 64])


# --------------------------------------------------------------------- images
def img_bytes(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def exif_orientation(o):
    ex = Image.Exif()
    ex[0x0112] = o
    return ex.tobytes()


def image_seeds():
    syn = Image.open(os.path.join(FIX, 'blip2-tiny', 'synthetic.png')).convert('RGB')
    rgb = syn.crop((96, 96, 112, 108))  # 16x12
    put('fuzz_image', 'rgb_16x12.png', img_bytes(rgb, 'PNG'))
    put('fuzz_image', 'rgba.png', img_bytes(rgb.convert('RGBA'), 'PNG'))
    put('fuzz_image', 'gray.png', img_bytes(rgb.convert('L'), 'PNG'))
    put('fuzz_image', 'palette.png', img_bytes(rgb.convert('P', palette=Image.ADAPTIVE, colors=7), 'PNG'))
    put('fuzz_image', 'bilevel.png', img_bytes(rgb.convert('1'), 'PNG'))
    put('fuzz_image', 'exif6.png', img_bytes(rgb, 'PNG', exif=exif_orientation(6)))
    put('fuzz_image', 'baseline444.jpg', img_bytes(rgb, 'JPEG', quality=80, subsampling=0))
    put('fuzz_image', 'baseline420.jpg', img_bytes(rgb, 'JPEG', quality=60, subsampling=2))
    put('fuzz_image', 'progressive.jpg', img_bytes(rgb, 'JPEG', quality=70, progressive=True))
    put('fuzz_image', 'gray.jpg', img_bytes(rgb.convert('L'), 'JPEG', quality=70))
    put('fuzz_image', 'cmyk.jpg', img_bytes(rgb.convert('CMYK'), 'JPEG', quality=70))
    put('fuzz_image', 'exif6.jpg', img_bytes(rgb, 'JPEG', quality=50, exif=exif_orientation(6)))
    put('fuzz_image', 'exif8.jpg', img_bytes(rgb.resize((5, 3)), 'JPEG', quality=50, exif=exif_orientation(8)))
    put('fuzz_image', 'rgb24.bmp', img_bytes(rgb.resize((7, 5)), 'BMP'))
    put('fuzz_image', 'palette.gif', img_bytes(rgb.resize((9, 6)).convert('P', palette=Image.ADAPTIVE, colors=5), 'GIF'))
    for rel in ('images/tiny_7x5.png', 'images/tiny_9x3.png', 'more-images/one_pixel.png', 'more-images/tiny_3x2.png',
                'images/gray16.png', 'more-images/rgba16.png'):
        data = fixture(rel)
        if len(data) <= 4096:
            put('fuzz_image', rel.replace('/', '_'), data)
    repo_tests = os.path.join(HERE, '..', 'tests', 'fixtures')
    for rel in ('gif/offset_frame_20x10.gif', 'gif/animated_30x20.gif', 'bmp/bilevel_37x23.bmp',
                'png/gray1_interlaced_13x11.png', 'png/pal2_short_plte_13x11.png', 'png/gray16_interlaced_13x11.png'):
        with open(os.path.join(repo_tests, rel), 'rb') as f:
            put('fuzz_image', 'tests_' + rel.replace('/', '_'), f.read())


# -------------------------------------------------------------------- configs
def config_seeds():
    # selector byte: see fuzz_config.c
    put('fuzz_config', 'bert_config.json', b'\x00' + fixture('minilm-tiny/config.json'))
    put('fuzz_config', 'blip2_config.json', b'\x01' + fixture('blip2-tiny/config.json'))
    put('fuzz_config', 'blip2_config_minimal.json', b'\x01' + json.dumps({
        'model_type': 'blip-2', 'num_query_tokens': 4, 'text_config': {'model_type': 'opt', 'hidden_size': 8,
                                                                        'num_attention_heads': 2}}).encode())
    pre = {'do_convert_rgb': True, 'do_normalize': True, 'do_rescale': True, 'do_resize': True,
           'image_mean': [0.5, 0.25, 0.125], 'image_std': [0.5, 0.5, 0.25], 'image_processor_type': 'BlipImageProcessor',
           'resample': 3, 'rescale_factor': 0.00392156862745098, 'size': {'height': 224, 'width': 224}}
    put('fuzz_config', 'preprocessor_config.json', b'\x02' + json.dumps(pre, indent=2).encode())
    put('fuzz_config', 'preprocessor_config_short.json', b'\x02' + json.dumps({'size': {'shortest_edge': 32}}).encode())
    for i, g in enumerate([
        {'_from_model_config': True, 'bos_token_id': 2, 'eos_token_id': 50118, 'pad_token_id': 1,
         'transformers_version': '4.47.0'},
        {'num_beams': 5, 'max_new_tokens': 30, 'min_new_tokens': 1, 'length_penalty': -1.0, 'early_stopping': True,
         'no_repeat_ngram_size': 3, 'repetition_penalty': 1.5, 'eos_token_id': [50118, 2]},
        {'do_sample': True, 'temperature': 0.7, 'top_k': 0, 'top_p': 0.9, 'early_stopping': 'never'},
    ]):
        put('fuzz_config', 'generation_config_%d.json' % i, b'\x03' + json.dumps(g).encode())
    put('fuzz_config', 'sentence_bert_config.json', b'\x04' + fixture('minilm-tiny/sentence_bert_config.json'))
    put('fuzz_config', 'modules.json', b'\x05' + fixture('minilm-tiny/modules.json'))
    put('fuzz_config', 'pooling_config.json', b'\x06' + fixture('minilm-tiny/1_Pooling/config.json'))
    idx = {'metadata': {'total_size': 40}, 'weight_map': {
        'a': 'model-00001-of-00002.safetensors', 'b': 'model-00001-of-00002.safetensors',
        'c': 'model-00002-of-00002.safetensors'}}
    put('fuzz_config', 'model.safetensors.index.json', b'\x07' + json.dumps(idx, indent=2).encode())


# ----------------------------------------------------------------- tokenizers
def tokenizer_seeds():
    def cases(rel, k):
        out = []
        p = os.path.join(FIX, rel)
        if not os.path.exists(p):
            return out
        with open(p, encoding='utf-8') as f:
            for line in f:
                c = json.loads(line)
                if 'text' in c and 'ids' in c:
                    out.append(c)
                if len(out) >= k:
                    break
        return out
    for mode, rel in ((0, 'tokenizers/bert-uncased/cases.jsonl'), (1, 'tokenizers/opt/cases.jsonl')):
        for i, c in enumerate(cases(rel, 24)):
            flags = (i % 2) | ((i % 5) << 1)
            put('fuzz_tokenizer', 'enc%d_%02d' % (mode, i), bytes([mode, flags]) + c['text'].encode())
            ids = c['ids']
            put('fuzz_tokenizer', 'dec%d_%02d' % (mode + 2, i),
                bytes([mode + 2, i % 2]) + struct.pack('<%di' % len(ids), *ids))
    put('fuzz_tokenizer', 'vocab_txt', b'\x04\x01' + b'[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n##s\nworld\n,\n!\n')
    def printable(x):
        return 33 <= x <= 126 or 161 <= x <= 172 or 174 <= x <= 255
    bpe_vocab = {'\u0120t': 256, 'he': 257}
    for b in range(256):
        cp = b if printable(b) else 256 + sum(1 for x in range(b) if not printable(x))
        bpe_vocab[chr(cp)] = b
    bpe_vocab['</s>'] = 258
    put('fuzz_tokenizer', 'vocab_json', b'\x05\x00' + json.dumps(bpe_vocab, ensure_ascii=False).encode())
    put('fuzz_tokenizer', 'merges_txt', b'\x06\x00' + '#version: 0.2\n\u0120 t\nh e\n\u0120t he\n'.encode())
    tc_wp = {'do_lower_case': False, 'strip_accents': True, 'tokenize_chinese_chars': False, 'unk_token': '[UNK]',
             'cls_token': '[CLS]', 'sep_token': '[SEP]', 'pad_token': '[PAD]', 'mask_token': '[MASK]',
             'clean_up_tokenization_spaces': True, 'model_max_length': 512}
    put('fuzz_tokenizer', 'tokenizer_config_wp', b'\x07\x01' + json.dumps(tc_wp).encode())
    tok = lambda s, sp=True: {'content': s, 'lstrip': False, 'normalized': False, 'rstrip': False,
                              'single_word': False, 'special': sp}
    tc_bpe = {'add_bos_token': True, 'add_eos_token': True, 'bos_token': tok('</s>'), 'eos_token': '</s>',
              'pad_token': '<pad>', 'unk_token': '<unk>', 'clean_up_tokenization_spaces': False,
              'added_tokens_decoder': {'259': tok('<pad>'), '260': tok('</s>'), '300': tok('<image>'),
                                       '7': tok('hello', False)}}
    put('fuzz_tokenizer', 'tokenizer_config_bpe', b'\x08\x01' + json.dumps(tc_bpe).encode())
    put('fuzz_tokenizer', 'added_tokens', b'\x09\x01' + json.dumps({'<image>': 262, '<x>': 263}).encode())
    stm = {'cls_token': '[CLS]', 'sep_token': {'content': '[SEP]', 'lstrip': False}, 'unk_token': '[UNK]',
           'additional_special_tokens': ['world']}
    put('fuzz_tokenizer', 'special_tokens_map', b'\x0a\x00' + json.dumps(stm).encode())


if __name__ == '__main__':
    safetensors_seeds()
    image_seeds()
    config_seeds()
    tokenizer_seeds()
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(OUT) for f in fs)
    print('corpus: %d bytes in %s' % (total, OUT))
