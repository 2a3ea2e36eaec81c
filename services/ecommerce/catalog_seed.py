"""The demo catalog: 54 products in 9 categories, the same on every start (prices in KRW).

The "digital" goods cost under 5,000 KRW: what card testers buy to probe stolen cards.

Inserted once, when the products table is empty, so a fresh shop can be browsed and bought
from at once. Ids are fixed (1-54) so two workers starting together insert the same rows and
the loser's duplicate-key error is harmless.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from .models import Product

CATALOG: dict[str, list[tuple[str, int]]] = {
    "electronics": [("Wireless Earbuds", 129_000), ("Smartphone 128GB", 1_099_000), ("4K Monitor 27in", 459_000),
                    ("Mechanical Keyboard", 149_000), ("Laptop 14in", 1_690_000), ("Smart Watch", 329_000)],
    "fashion": [("Wool Coat", 289_000), ("Running Shoes", 119_000), ("Denim Jacket", 89_000),
                ("Leather Belt", 45_000), ("Silk Scarf", 68_000), ("Canvas Sneakers", 59_000)],
    "home": [("Robot Vacuum", 599_000), ("Air Purifier", 349_000), ("Rice Cooker", 189_000),
             ("Bedding Set", 139_000), ("Desk Lamp", 39_000), ("Coffee Machine", 259_000)],
    "beauty": [("Sunscreen SPF50", 22_000), ("Hydrating Serum", 38_000), ("Cushion Foundation", 33_000),
               ("Sheet Mask 10-pack", 15_000), ("Hair Dryer", 99_000), ("Perfume 50ml", 145_000)],
    "sports": [("Yoga Mat", 35_000), ("Road Bike", 1_250_000), ("Tennis Racket", 210_000),
               ("Hiking Backpack", 129_000), ("Dumbbell Set", 79_000), ("Camping Tent", 239_000)],
    "books": [("Python Cookbook", 42_000), ("Korean Novel Collection", 27_000), ("Data Science Handbook", 48_000),
              ("World Atlas", 55_000), ("Children's Picture Book", 14_000), ("Cooking at Home", 24_000)],
    "food": [("Premium Kimchi 2kg", 32_000), ("Korean Pear Gift Box", 79_000), ("Green Tea 100g", 18_000),
             ("Red Ginseng Extract", 159_000), ("Hanwoo Beef Set", 220_000), ("Instant Ramen 20-pack", 17_000)],
    "toys": [("Building Blocks", 69_000), ("Remote Control Car", 89_000), ("Plush Bear", 29_000),
             ("Board Game", 39_000), ("Puzzle 1000 pcs", 25_000), ("Drone Mini", 149_000)],
    "digital": [("Gift Card 1,000", 1_000), ("Sticker Pack", 2_500), ("Wallpaper Pack", 1_500),
                ("E-book Sampler", 3_900), ("Game Credits 5,000", 5_000), ("Music Download", 1_200)],
}
DIGITAL_STOCK = 100_000  # downloads do not run out


def products() -> list[Product]:
    rows = []
    for c, (category, items) in enumerate(CATALOG.items()):
        for i, (name, price) in enumerate(items):
            # Stock varies by position only, so it is the same on every start.
            stock = DIGITAL_STOCK if category == "digital" else 500 + ((c * 7 + i * 13) % 5) * 250
            rows.append(Product(id=c * 6 + i + 1, name=name, category=category, price=price, stock=stock))
    return rows


async def seed_catalog(session: AsyncSession) -> int:
    """Insert the catalog if there are no products; return how many rows were added."""
    if await session.scalar(select(func.count()).select_from(Product)):
        return 0
    rows = products()
    session.add_all(rows)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()  # another worker seeded it first
        return 0
    return len(rows)
