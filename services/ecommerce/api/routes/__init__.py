"""One APIRouter per resource: auth, products, cart, orders."""
