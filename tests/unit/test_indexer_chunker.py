"""Chunking per language: definitions found at the right line ranges."""

from __future__ import annotations

import logging

import pytest

from indexer import chunker
from indexer.chunker import Chunk, ChunkLimits, chunk_text
from indexer.languages import language_for_path

SAMPLE_PY = '''\
"""Shopping cart utilities."""

import json
from dataclasses import dataclass

TAX_RATE = 0.2


@dataclass
class Item:
    """A product line in the cart."""

    name: str
    price: float
    quantity: int = 1

    def total(self) -> float:
        """Price times quantity."""
        return self.price * self.quantity


class Cart:
    """A collection of items."""

    def __init__(self) -> None:
        self.items: list[Item] = []

    def add(self, item: Item) -> None:
        """Add an item, merging quantities of the same product."""
        for existing in self.items:
            if existing.name == item.name:
                existing.quantity += item.quantity
                return
        self.items.append(item)

    def subtotal(self) -> float:
        return sum(i.total() for i in self.items)


def load_cart(path: str) -> Cart:
    """Read a cart saved as JSON."""
    cart = Cart()
    with open(path, encoding="utf-8") as handle:
        for row in json.load(handle):
            cart.add(Item(row["name"], float(row["price"]), int(row["quantity"])))
    return cart


def price_with_tax(amount: float) -> float:
    return round(amount * (1 + TAX_RATE), 2)
'''

SAMPLE_JS = """\
import { readFile } from "node:fs/promises";

const DEFAULT_PORT = 8080;

/**
 * Load the server configuration from a JSON file.
 */
export async function loadConfig(path) {
  const raw = await readFile(path, "utf8");
  const config = JSON.parse(raw);
  config.port ??= DEFAULT_PORT;
  return config;
}

export const isLocal = (host) => host === "localhost" || host === "127.0.0.1";

export class Router {
  constructor() {
    this.routes = new Map();
  }

  add(method, path, handler) {
    this.routes.set(`${method} ${path}`, handler);
    return this;
  }

  match(method, path) {
    return this.routes.get(`${method} ${path}`) ?? null;
  }
}
"""

SAMPLE_TS = """\
export interface User {
  id: number;
  name: string;
  email?: string;
}

export type UserId = User["id"];

export class UserRepository {
  private users = new Map<UserId, User>();

  save(user: User): void {
    this.users.set(user.id, user);
  }

  find(id: UserId): User | undefined {
    return this.users.get(id);
  }
}

export function displayName(user: User): string {
  return user.email ? `${user.name} <${user.email}>` : user.name;
}
"""

SAMPLE_TSX = """\
import React from "react";

type Props = { label: string; onClick: () => void };

export function Button({ label, onClick }: Props) {
  return (
    <button className="btn" onClick={onClick}>
      {label}
    </button>
  );
}

export const Spinner = () => <div className="spinner" />;
"""

SAMPLE_GO = """\
package store

import (
	"errors"
	"sync"
)

// ErrNotFound is returned when a key is missing.
var ErrNotFound = errors.New("not found")

// Store is a concurrency-safe key/value map.
type Store struct {
	mu   sync.RWMutex
	data map[string]string
}

// New returns an empty store.
func New() *Store {
	return &Store{data: make(map[string]string)}
}

// Get returns the value stored under key.
func (s *Store) Get(key string) (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.data[key]
	if !ok {
		return "", ErrNotFound
	}
	return v, nil
}

// Set stores value under key.
func (s *Store) Set(key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[key] = value
}
"""

SAMPLE_RS = """\
use std::collections::HashMap;

/// Counts words in a text.
#[derive(Debug, Default)]
pub struct WordCounter {
    counts: HashMap<String, usize>,
}

impl WordCounter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_text(&mut self, text: &str) {
        for word in text.split_whitespace() {
            *self.counts.entry(word.to_lowercase()).or_insert(0) += 1;
        }
    }

    pub fn most_common(&self) -> Option<(&String, &usize)> {
        self.counts.iter().max_by_key(|(_, n)| **n)
    }
}

pub trait Summary {
    fn summarize(&self) -> String;
}

fn main() {
    let mut counter = WordCounter::new();
    counter.add_text("a b a");
    println!("{:?}", counter.most_common());
}
"""

SAMPLE_JAVA = """\
package com.example.bank;

import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.List;

public class Account {
    private final String owner;
    private BigDecimal balance = BigDecimal.ZERO;
    private final List<String> history = new ArrayList<>();

    public Account(String owner) {
        this.owner = owner;
    }

    public void deposit(BigDecimal amount) {
        if (amount.signum() <= 0) {
            throw new IllegalArgumentException("amount must be positive");
        }
        balance = balance.add(amount);
        history.add("deposit " + amount);
    }

    public BigDecimal getBalance() {
        return balance;
    }
}

interface Auditor {
    void audit(Account account);
}
"""

SAMPLE_C = """\
#include <stdlib.h>
#include <string.h>

#define INITIAL_CAPACITY 16

typedef struct {
    char **items;
    size_t len;
    size_t cap;
} string_list;

static int grow(string_list *list) {
    size_t cap = list->cap ? list->cap * 2 : INITIAL_CAPACITY;
    char **items = realloc(list->items, cap * sizeof(char *));
    if (!items) {
        return -1;
    }
    list->items = items;
    list->cap = cap;
    return 0;
}

int string_list_push(string_list *list, const char *s) {
    if (list->len == list->cap && grow(list) != 0) {
        return -1;
    }
    list->items[list->len++] = strdup(s);
    return 0;
}
"""

SAMPLE_CPP = """\
#include <string>
#include <vector>

namespace shapes {

class Shape {
 public:
  virtual ~Shape() = default;
  virtual double area() const = 0;
};

class Rectangle : public Shape {
 public:
  Rectangle(double w, double h) : w_(w), h_(h) {}
  double area() const override { return w_ * h_; }

 private:
  double w_;
  double h_;
};

}  // namespace shapes

double total_area(const std::vector<shapes::Shape*>& shapes) {
  double sum = 0;
  for (const auto* s : shapes) {
    sum += s->area();
  }
  return sum;
}
"""


def chunks_of(path: str, text: str, limits: ChunkLimits = chunker.DEFAULT_LIMITS) -> list[Chunk]:
    """Chunk a sample the way the index does."""
    return chunk_text(path, text, language_for_path(path), limits)


def table(chunks: list[Chunk]) -> list[tuple[int, int, str, str | None]]:
    """(start, end, kind, symbol) rows, for compact assertions."""
    return [(c.start_line, c.end_line, c.kind, c.symbol) for c in chunks]


@pytest.mark.parametrize(("path", "text", "expected"), [
    ("shop/cart.py", SAMPLE_PY, [
        (1, 6, "block", None),
        (9, 19, "class", "Item"),
        (22, 37, "class", "Cart"),
        (40, 46, "function", "load_cart"),
        (49, 50, "function", "price_with_tax"),
    ]),
    ("src/server.js", SAMPLE_JS, [
        (1, 3, "block", None),
        (5, 13, "function", "loadConfig"),
        (15, 15, "function", "isLocal"),
        (17, 30, "class", "Router"),
    ]),
    ("src/users.ts", SAMPLE_TS, [
        (1, 7, "block", "User, UserId"),
        (9, 19, "class", "UserRepository"),
        (21, 23, "function", "displayName"),
    ]),
    ("ui/Button.tsx", SAMPLE_TSX, [
        (1, 3, "type", "Props"),
        (5, 11, "function", "Button"),
        (13, 13, "function", "Spinner"),
    ]),
    ("store/store.go", SAMPLE_GO, [
        (1, 20, "block", "Store, New"),
        (22, 31, "method", "Store.Get"),
        (33, 38, "method", "Store.Set"),
    ]),
    ("src/main.rs", SAMPLE_RS, [
        (1, 7, "class", "WordCounter"),
        (9, 23, "class", "WordCounter"),
        (25, 33, "block", "Summary, main"),
    ]),
    ("bank/Account.java", SAMPLE_JAVA, [
        (1, 5, "block", None),
        (7, 27, "class", "Account"),
        (29, 31, "class", "Auditor"),
    ]),
    ("lib/list.c", SAMPLE_C, [
        (1, 10, "type", "string_list"),
        (12, 21, "function", "grow"),
        (23, 29, "function", "string_list_push"),
    ]),
    ("geo/shapes.cpp", SAMPLE_CPP, [
        (1, 2, "block", None),
        (4, 22, "namespace", "shapes"),
        (24, 30, "function", "total_area"),
    ]),
])
def test_definitions_and_line_ranges(path: str, text: str,
                                     expected: list[tuple[int, int, str, str | None]]) -> None:
    chunks = chunks_of(path, text)
    assert table(chunks) == expected
    lines = text.splitlines(keepends=True)
    for chunk in chunks:
        assert chunk.path == path
        assert chunk.language == language_for_path(path)
        assert chunk.text == "".join(lines[chunk.start_line - 1:chunk.end_line])


SMALL = ChunkLimits(max_lines=12, merge_lines=12, small_lines=6)


def test_large_python_class_is_split_into_methods_with_class_context() -> None:
    assert table(chunks_of("shop/cart.py", SAMPLE_PY, SMALL)) == [
        (1, 6, "block", None),
        (9, 19, "class", "Item"),
        (22, 26, "block", "Cart, Cart.__init__"),
        (28, 34, "method", "Cart.add"),
        (36, 37, "method", "Cart.subtotal"),
        (40, 46, "function", "load_cart"),
        (49, 50, "function", "price_with_tax"),
    ]


def test_large_java_class_members_do_not_merge_with_outside_code() -> None:
    assert table(chunks_of("bank/Account.java", SAMPLE_JAVA, SMALL)) == [
        (1, 5, "block", None),
        (7, 14, "block", "Account, Account.Account"),
        (16, 22, "method", "Account.deposit"),
        (24, 27, "method", "Account.getBalance"),
        (29, 31, "class", "Auditor"),
    ]


def test_large_rust_impl_and_cpp_namespace_are_split() -> None:
    rust = table(chunks_of("src/main.rs", SAMPLE_RS, SMALL))
    assert (20, 23, "method", "WordCounter.most_common") in rust
    cpp = table(chunks_of("geo/shapes.cpp", SAMPLE_CPP, SMALL))
    assert (12, 22, "class", "shapes.Rectangle") in cpp


def test_js_class_methods_get_class_symbol() -> None:
    limits = ChunkLimits(max_lines=8, merge_lines=4, small_lines=3)
    symbols = {c.symbol for c in chunks_of("src/server.js", SAMPLE_JS, limits)}
    assert {"Router.add", "Router.match", "loadConfig", "isLocal"} <= symbols


def test_long_function_becomes_overlapping_windows() -> None:
    body = "".join(f"    total += {i}\n" for i in range(120))
    text = f"def big():\n    total = 0\n{body}    return total\n"
    chunks = chunks_of("big.py", text)
    assert len(chunks) >= 3
    assert all(c.symbol == "big" and c.kind == "function" for c in chunks)
    assert chunks[0].start_line == 1 and chunks[-1].end_line == 123
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.start_line <= before.end_line  # overlap, no gap
    assert all(c.end_line - c.start_line + 1 <= chunker.DEFAULT_LIMITS.max_lines for c in chunks)


def test_plain_text_falls_back_to_windows_with_one_warning(caplog: pytest.LogCaptureFixture
                                                            ) -> None:
    chunker._warned_languages.discard("md")
    text = "".join(f"line {i}\n" for i in range(100))
    with caplog.at_level(logging.WARNING, logger="indexer.chunker"):
        first = chunk_text("docs/a.md", text, None)
        chunk_text("docs/b.md", text, None)
    assert [r for r in caplog.records if "'md'" in r.getMessage()].__len__() == 1
    assert first[0].language == "md" and first[0].kind == "text"
    assert first[0].start_line == 1 and first[-1].end_line == 100


def test_unparsable_code_falls_back_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    garbage = "".join(")))) ]]] {{{ ;;; <<< >>>\n" for _ in range(30))
    with caplog.at_level(logging.WARNING, logger="indexer.chunker"):
        chunks = chunk_text("broken.py", garbage, "python")
    assert chunks and all(c.kind == "text" for c in chunks)
    assert any("broken.py" in r.getMessage() for r in caplog.records)


def test_empty_file_has_no_chunks() -> None:
    assert chunk_text("empty.py", "", "python") == []
    assert chunk_text("blank.py", "\n\n   \n", "python") == []
