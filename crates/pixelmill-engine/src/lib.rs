//! The image engine: sniffing, limits, decoding, the filter registry (one filter per file), the expr language, encoding.
