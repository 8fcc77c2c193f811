"""The map: where a model puts each prompt (its last-token hidden state), laid out in 2-D in a web page."""

from mindset.map.build import MapSettings, build_map, encode_model
from mindset.map.cache import EncodingCache, model_fingerprint
from mindset.map.encode import hidden_states, tokenize_item
from mindset.map.layout import Layout, fit_layout
from mindset.map.sources import Item, load_items

__all__ = ["EncodingCache", "Item", "Layout", "MapSettings", "build_map", "encode_model", "fit_layout", "hidden_states", "load_items", "model_fingerprint", "tokenize_item"]
