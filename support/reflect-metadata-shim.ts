/**
 * The few Reflect metadata functions that @peculiar/x509's dependency injection container
 * (tsyringe) checks for at load time. It only stores and reads metadata by key; nothing here
 * emits decorator metadata. Import this module before '@peculiar/x509'.
 * A real polyfill package (reflect-metadata) would replace this file.
 */
type Store = Map<unknown, unknown>;
const stores = new WeakMap<object, Store>();

function own(target: object, create: boolean): Store | undefined {
  let store = stores.get(target);
  if (!store && create) {
    store = new Map();
    stores.set(target, store);
  }
  return store;
}

function getMetadata(key: unknown, target: object): unknown {
  for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t)) {
    const store = own(t, false);
    if (store?.has(key)) return store.get(key);
  }
  return undefined;
}

const reflect = Reflect as unknown as Record<string, unknown>;
if (typeof reflect.getMetadata !== 'function') {
  Object.assign(reflect, {
    defineMetadata: (key: unknown, value: unknown, target: object) => void own(target, true)?.set(key, value),
    getOwnMetadata: (key: unknown, target: object) => own(target, false)?.get(key),
    hasOwnMetadata: (key: unknown, target: object) => own(target, false)?.has(key) ?? false,
    getMetadata,
    hasMetadata: (key: unknown, target: object) => getMetadata(key, target) !== undefined,
    metadata: (key: unknown, value: unknown) => (target: object) => void own(target, true)?.set(key, value),
  });
}
