// qsl-bench: an order-book replay benchmark, the demo target of sprof.
//
// One "day" is a deterministic order flow (own SplitMix64 PRNG) encoded as an ITCH-style binary
// feed (fixed-layout, big-endian add / cancel / modify / execute messages). Replaying a day decodes
// each message, dispatches it and applies it to a limit order book: a price-level ladder per side
// with an intrusive FIFO queue per level, an open-addressing order-id index and a matching engine.
//
// Designed for profiling: the important functions are `@inline(never)` so they survive `-O` and show
// up as frames (the target is built with frame pointers), the call depth is 8-13 levels, and the
// work is spread over several hot spots of different weights (feed generation, decoding, matching,
// resting orders, order-id index, depth snapshots, end-of-day audit).
//
// Determinism: no Dictionary/Set/Hasher anywhere, so the checksum and the instruction count depend
// only on the arguments (no need for SWIFT_DETERMINISTIC_HASHING).
//
// Usage: qsl-bench [--messages N] [--seed S] [--repeat R]

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// MARK: - Deterministic randomness

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough for a synthetic order flow.
struct SplitMix64 {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    @inline(__always)
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in `0..<bound` (Lemire's multiply-high reduction; the tiny bias is irrelevant here).
    @inline(__always)
    mutating func below(_ bound: UInt64) -> UInt64 { next().multipliedFullWidth(by: bound).high }
}

// MARK: - Checksum

enum Checksum {
    /// Folds a value into a running 64-bit checksum (FNV-1a style on whole words plus a final mix).
    @inline(never)
    static func mix(_ h: UInt64, _ value: UInt64) -> UInt64 {
        var x = (h ^ value) &* 0x0000_0100_0000_01B3
        x ^= x >> 29
        x = x &* 0xBF58_476D_1CE4_E5B9
        return x ^ (x >> 32)
    }
}

// MARK: - Wire format

/// Message types, ITCH-style one-byte tags.
enum MessageType {
    static let addOrder: UInt8 = 0x41  // 'A'
    static let cancelOrder: UInt8 = 0x58  // 'X'
    static let modifyOrder: UInt8 = 0x55  // 'U'
    static let executeMarket: UInt8 = 0x45  // 'E'
}

/// Sides on the wire.
enum WireSide {
    static let buy: UInt8 = 0x42  // 'B'
    static let sell: UInt8 = 0x53  // 'S'
}

/// Fixed message sizes in bytes (all integers big-endian).
enum MessageLayout {
    /// 'A' type u8, timestamp u64, order id u64, side u8, shares u32, price u32.
    static let addOrder = 26
    /// 'X' type u8, timestamp u64, order id u64.
    static let cancelOrder = 17
    /// 'U' type u8, timestamp u64, order id u64, new shares u32.
    static let modifyOrder = 21
    /// 'E' type u8, timestamp u64, taker id u64, side u8, shares u32 (a market order).
    static let executeMarket = 22
}

/// One decoded feed message. Fields a message type does not carry are zero.
struct FeedMessage {
    var type: UInt8 = 0
    var timestamp: UInt64 = 0
    var orderId: UInt64 = 0
    var side: UInt8 = 0
    var shares: UInt32 = 0
    var price: UInt32 = 0
}

// MARK: - Encoding

/// Appends messages to a byte buffer.
struct FeedEncoder {
    var bytes: [UInt8] = []
    var messageCount = 0

    init(expectedMessages: Int) {
        bytes.reserveCapacity(expectedMessages * MessageLayout.addOrder)
    }

    @inline(__always)
    mutating func putU8(_ v: UInt8) { bytes.append(v) }

    @inline(never)
    mutating func putBigEndian32(_ v: UInt32) {
        bytes.append(UInt8(truncatingIfNeeded: v >> 24))
        bytes.append(UInt8(truncatingIfNeeded: v >> 16))
        bytes.append(UInt8(truncatingIfNeeded: v >> 8))
        bytes.append(UInt8(truncatingIfNeeded: v))
    }

    @inline(never)
    mutating func putBigEndian64(_ v: UInt64) {
        var shift: UInt64 = 56
        while true {
            bytes.append(UInt8(truncatingIfNeeded: v >> shift))
            if shift == 0 { break }
            shift -= 8
        }
    }

    @inline(never)
    mutating func encodeAdd(timestamp: UInt64, orderId: UInt64, side: UInt8, shares: UInt32, price: UInt32) {
        putU8(MessageType.addOrder)
        putBigEndian64(timestamp)
        putBigEndian64(orderId)
        putU8(side)
        putBigEndian32(shares)
        putBigEndian32(price)
        messageCount += 1
    }

    @inline(never)
    mutating func encodeCancel(timestamp: UInt64, orderId: UInt64) {
        putU8(MessageType.cancelOrder)
        putBigEndian64(timestamp)
        putBigEndian64(orderId)
        messageCount += 1
    }

    @inline(never)
    mutating func encodeModify(timestamp: UInt64, orderId: UInt64, shares: UInt32) {
        putU8(MessageType.modifyOrder)
        putBigEndian64(timestamp)
        putBigEndian64(orderId)
        putBigEndian32(shares)
        messageCount += 1
    }

    @inline(never)
    mutating func encodeExecute(timestamp: UInt64, takerId: UInt64, side: UInt8, shares: UInt32) {
        putU8(MessageType.executeMarket)
        putBigEndian64(timestamp)
        putBigEndian64(takerId)
        putU8(side)
        putBigEndian32(shares)
        messageCount += 1
    }
}

// MARK: - Order flow generation

/// Price ladder size in ticks. Prices on the wire are ticks in `1..<ladderTicks`.
let ladderTicks = 8192

/// Generates one trading day of messages: a drifting mid price, passive orders near it, cancels and
/// modifies of earlier orders, occasional aggressive limit orders and market orders.
struct OrderFlowGenerator {
    var rng: SplitMix64
    var mid: Int = ladderTicks / 2
    var nextOrderId: UInt64 = 1
    var timestamp: UInt64 = 34_200_000_000_000  // 09:30 in nanoseconds
    /// Ids the generator believes are live (some will have been filled by the book meanwhile).
    var liveIds: [UInt64] = []
    let targetLive = 12_000
    var emitted = 0

    init(seed: UInt64) {
        rng = SplitMix64(seed: seed ^ 0x5153_4C2D_4245_4E43)  // "QSL-BENC"
        liveIds.reserveCapacity(2 * targetLive)
    }

    @inline(never)
    mutating func driftMid() {
        let r = rng.below(16)
        if r == 0, mid > 1200 { mid -= 1 } else if r == 1, mid < ladderTicks - 1200 { mid += 1 }
    }

    /// A passive distance from the mid: mostly close, with a long tail.
    @inline(never)
    mutating func passiveOffset() -> Int {
        let r = rng.next()
        let near = Int(r & 7)  // 0...7
        let far = (r >> 8) & 15 == 0 ? Int((r >> 16) % 96) : 0
        return 1 + near + far
    }

    @inline(never)
    mutating func pickLiveIndex() -> Int {
        // Prefer recent orders (cancel/modify activity is concentrated near the top of the book).
        let n = UInt64(liveIds.count)
        let window = min(n, 4096)
        if rng.below(4) != 0 { return Int(n - 1 - rng.below(window)) }
        return Int(rng.below(n))
    }

    @inline(never)
    mutating func removeLive(at i: Int) -> UInt64 {
        let id = liveIds[i]
        liveIds[i] = liveIds[liveIds.count - 1]
        liveIds.removeLast()
        return id
    }

    @inline(never)
    mutating func nextEvent(into encoder: inout FeedEncoder) {
        timestamp &+= 1 + rng.below(2_000)
        driftMid()
        var roll = Int(rng.below(100))
        if liveIds.count > targetLive && roll < 48 && roll % 2 == 0 { roll = 60 }  // shed: cancel instead
        if liveIds.isEmpty && roll >= 48 && roll < 92 { roll = 0 }

        switch roll {
        case 0..<48:  // passive add
            let buy = rng.below(2) == 0
            let offset = passiveOffset()
            let price = buy ? mid - offset : mid + offset
            let shares = UInt32(1 + rng.below(10)) * 100
            let id = nextOrderId
            nextOrderId += 1
            liveIds.append(id)
            encoder.encodeAdd(
                timestamp: timestamp, orderId: id, side: buy ? WireSide.buy : WireSide.sell,
                shares: shares, price: UInt32(price))
        case 48..<82:  // cancel
            let id = removeLive(at: pickLiveIndex())
            encoder.encodeCancel(timestamp: timestamp, orderId: id)
        case 82..<92:  // modify (reduce keeps priority, increase loses it)
            let id = liveIds[pickLiveIndex()]
            let shares = UInt32(1 + rng.below(12)) * 100
            encoder.encodeModify(timestamp: timestamp, orderId: id, shares: shares)
        case 92..<97:  // aggressive limit order, crosses the spread
            let buy = rng.below(2) == 0
            let through = Int(rng.below(4))
            let price = buy ? mid + through : mid - through
            let shares = UInt32(1 + rng.below(30)) * 100
            let id = nextOrderId
            nextOrderId += 1
            liveIds.append(id)
            encoder.encodeAdd(
                timestamp: timestamp, orderId: id, side: buy ? WireSide.buy : WireSide.sell,
                shares: shares, price: UInt32(price))
        default:  // market order
            let buy = rng.below(2) == 0
            let shares = UInt32(1 + rng.below(40)) * 100
            let id = nextOrderId
            nextOrderId += 1
            encoder.encodeExecute(
                timestamp: timestamp, takerId: id, side: buy ? WireSide.buy : WireSide.sell, shares: shares)
        }
        emitted += 1  // after the calls: keeps encodeX from being tail calls
    }
}

/// Generates and encodes one day.
@inline(never)
func generateDay(seed: UInt64, messages: Int) -> [UInt8] {
    var generator = OrderFlowGenerator(seed: seed)
    var encoder = FeedEncoder(expectedMessages: messages)
    for _ in 0..<messages {
        generator.nextEvent(into: &encoder)
    }
    return encoder.bytes
}

// MARK: - Decoding

/// Reads messages from an encoded feed.
struct FeedDecoder {
    let bytes: UnsafeBufferPointer<UInt8>
    var offset = 0
    var malformed = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    @inline(never)
    func readBigEndian64(at o: Int) -> UInt64 {
        var v: UInt64 = 0
        var i = o
        let end = o + 8
        while i < end {
            v = (v << 8) | UInt64(bytes[i])
            i += 1
        }
        return v
    }

    @inline(never)
    func readBigEndian32(at o: Int) -> UInt32 {
        (UInt32(bytes[o]) << 24) | (UInt32(bytes[o + 1]) << 16) | (UInt32(bytes[o + 2]) << 8) | UInt32(bytes[o + 3])
    }

    @inline(never)
    func decodeAdd(at o: Int, into m: inout FeedMessage) {
        m.timestamp = readBigEndian64(at: o + 1)
        m.orderId = readBigEndian64(at: o + 9)
        m.side = bytes[o + 17]
        m.shares = readBigEndian32(at: o + 18)
        m.price = readBigEndian32(at: o + 22)
    }

    @inline(never)
    func decodeCancel(at o: Int, into m: inout FeedMessage) {
        m.timestamp = readBigEndian64(at: o + 1)
        m.orderId = readBigEndian64(at: o + 9)
        m.side = 0
        m.shares = 0
        m.price = 0
    }

    @inline(never)
    func decodeModify(at o: Int, into m: inout FeedMessage) {
        m.timestamp = readBigEndian64(at: o + 1)
        m.orderId = readBigEndian64(at: o + 9)
        m.side = 0
        m.shares = readBigEndian32(at: o + 17)
        m.price = 0
    }

    @inline(never)
    func decodeExecute(at o: Int, into m: inout FeedMessage) {
        m.timestamp = readBigEndian64(at: o + 1)
        m.orderId = readBigEndian64(at: o + 9)
        m.side = bytes[o + 17]
        m.shares = readBigEndian32(at: o + 18)
        m.price = 0
    }

    /// Decodes the next message; false at the end of the feed (or at a truncated/unknown message).
    @inline(never)
    mutating func decodeNext(into m: inout FeedMessage) -> Bool {
        guard offset < bytes.count else { return false }
        let type = bytes[offset]
        let size: Int
        switch type {
        case MessageType.addOrder: size = MessageLayout.addOrder
        case MessageType.cancelOrder: size = MessageLayout.cancelOrder
        case MessageType.modifyOrder: size = MessageLayout.modifyOrder
        case MessageType.executeMarket: size = MessageLayout.executeMarket
        default:
            malformed += 1
            return false
        }
        guard offset + size <= bytes.count else {
            malformed += 1
            return false
        }
        m.type = type
        switch type {
        case MessageType.addOrder: decodeAdd(at: offset, into: &m)
        case MessageType.cancelOrder: decodeCancel(at: offset, into: &m)
        case MessageType.modifyOrder: decodeModify(at: offset, into: &m)
        default: decodeExecute(at: offset, into: &m)
        }
        offset += size
        return true
    }
}

// MARK: - Order storage

/// A resting order, linked into its price level's FIFO queue.
struct RestingOrder {
    var id: UInt64 = 0
    var shares: UInt32 = 0
    var price: Int32 = 0
    var isBuy = false
    var prev: Int32 = -1
    var next: Int32 = -1
}

/// Slab of resting orders with a free list; slots are `Int32` indices.
struct OrderPool {
    var orders: [RestingOrder] = []
    var freeHead: Int32 = -1
    var live = 0

    @inline(never)
    mutating func allocate(id: UInt64, isBuy: Bool, price: Int32, shares: UInt32) -> Int32 {
        let order = RestingOrder(id: id, shares: shares, price: price, isBuy: isBuy, prev: -1, next: -1)
        live += 1
        if freeHead >= 0 {
            let slot = freeHead
            freeHead = orders[Int(slot)].next
            orders[Int(slot)] = order
            return slot
        }
        orders.append(order)
        return Int32(orders.count - 1)
    }

    @inline(never)
    mutating func release(_ slot: Int32) {
        orders[Int(slot)].id = 0
        orders[Int(slot)].next = freeHead
        freeHead = slot
        live -= 1
    }
}

/// Order id -> pool slot. Open addressing, linear probing, backward-shift deletion; key 0 = empty.
struct OrderIndex {
    var keys: [UInt64]
    var slots: [Int32]
    var count = 0
    var mask: Int
    var shift: UInt64

    init(capacityLog2: Int = 14) {
        keys = Array(repeating: 0, count: 1 << capacityLog2)
        slots = Array(repeating: -1, count: 1 << capacityLog2)
        mask = (1 << capacityLog2) - 1
        shift = UInt64(64 - capacityLog2)
    }

    @inline(__always)
    func home(_ id: UInt64) -> Int { Int(truncatingIfNeeded: (id &* 0x9E37_79B9_7F4A_7C15) >> shift) }

    /// The table position holding `id`, or -1.
    @inline(never)
    func probe(_ id: UInt64) -> Int {
        var i = home(id)
        while true {
            let k = keys[i]
            if k == id { return i }
            if k == 0 { return -1 }
            i = (i + 1) & mask
        }
    }

    @inline(never)
    func lookup(_ id: UInt64) -> Int32 {
        let p = probe(id)
        return p < 0 ? -1 : slots[p]
    }

    @inline(never)
    mutating func insert(_ id: UInt64, slot: Int32) {
        if (count + 1) * 2 > keys.count { grow() }
        var i = home(id)
        while keys[i] != 0 {
            if keys[i] == id {
                slots[i] = slot
                return
            }
            i = (i + 1) & mask
        }
        keys[i] = id
        slots[i] = slot
        count += 1
    }

    @inline(never)
    mutating func remove(_ id: UInt64) -> Int32 {
        var i = probe(id)
        if i < 0 { return -1 }
        let removed = slots[i]
        count -= 1
        // Backward-shift deletion keeps probe sequences intact without tombstones.
        var j = i
        while true {
            j = (j + 1) & mask
            let k = keys[j]
            if k == 0 { break }
            let h = home(k)
            let inRange = i <= j ? (i < h && h <= j) : (i < h || h <= j)
            if !inRange {
                keys[i] = k
                slots[i] = slots[j]
                i = j
            }
        }
        keys[i] = 0
        slots[i] = -1
        return removed
    }

    @inline(never)
    mutating func grow() {
        let oldKeys = keys
        let oldSlots = slots
        let log2 = 64 - Int(shift) + 1
        self = OrderIndex(capacityLog2: log2)
        for i in 0..<oldKeys.count where oldKeys[i] != 0 {
            insert(oldKeys[i], slot: oldSlots[i])
        }
    }
}

// MARK: - Trades

/// Running totals of executions.
struct TradeTape {
    var trades = 0
    var sharesTraded: UInt64 = 0
    var notional: UInt64 = 0
    var checksum: UInt64 = 0xCBF2_9CE4_8422_2325

    @inline(never)
    mutating func record(makerId: UInt64, takerId: UInt64, price: Int32, shares: UInt32) {
        trades += 1
        sharesTraded &+= UInt64(shares)
        notional &+= UInt64(shares) &* UInt64(price)
        checksum = Checksum.mix(checksum, makerId)
        checksum = Checksum.mix(checksum, takerId ^ (UInt64(price) << 40) ^ UInt64(shares))
    }
}

// MARK: - Price levels

/// One price level: a FIFO queue of resting orders (intrusive doubly-linked list through the pool).
struct PriceLevel {
    var head: Int32 = -1
    var tail: Int32 = -1
    var totalShares: UInt64 = 0
    var orderCount: Int32 = 0

    var isEmpty: Bool { head < 0 }

    @inline(never)
    mutating func enqueue(_ slot: Int32, pool: inout OrderPool) {
        pool.orders[Int(slot)].prev = tail
        pool.orders[Int(slot)].next = -1
        if tail >= 0 { pool.orders[Int(tail)].next = slot } else { head = slot }
        tail = slot
        totalShares += UInt64(pool.orders[Int(slot)].shares)
        orderCount += 1
    }

    @inline(never)
    mutating func unlink(_ slot: Int32, pool: inout OrderPool) {
        let o = pool.orders[Int(slot)]
        if o.prev >= 0 { pool.orders[Int(o.prev)].next = o.next } else { head = o.next }
        if o.next >= 0 { pool.orders[Int(o.next)].prev = o.prev } else { tail = o.prev }
        totalShares -= UInt64(o.shares)
        orderCount -= 1
    }

    /// Fills up to `wanted` shares against this level in time priority. Returns the shares filled.
    @inline(never)
    mutating func fill(
        _ wanted: UInt32, takerId: UInt64, price: Int32,
        pool: inout OrderPool, index: inout OrderIndex, tape: inout TradeTape
    ) -> UInt32 {
        var remaining = wanted
        while remaining > 0 && head >= 0 {
            let slot = head
            let maker = pool.orders[Int(slot)]
            let traded = min(remaining, maker.shares)
            tape.record(makerId: maker.id, takerId: takerId, price: price, shares: traded)
            remaining -= traded
            totalShares -= UInt64(traded)
            if traded == maker.shares {
                head = maker.next
                if head >= 0 { pool.orders[Int(head)].prev = -1 } else { tail = -1 }
                orderCount -= 1
                _ = index.remove(maker.id)
                pool.release(slot)
            } else {
                pool.orders[Int(slot)].shares = maker.shares - traded
            }
        }
        return wanted - remaining
    }
}

/// All price levels of one side plus the best price.
struct PriceLadder {
    var levels: [PriceLevel]
    /// Best price in ticks, -1 when the side is empty.
    var best: Int32 = -1
    let isBid: Bool

    init(isBid: Bool) {
        self.isBid = isBid
        levels = Array(repeating: PriceLevel(), count: ladderTicks)
    }

    @inline(__always)
    func improves(_ price: Int32, on current: Int32) -> Bool {
        current < 0 || (isBid ? price > current : price < current)
    }

    /// After the best level emptied: scan away from the spread for the next non-empty level.
    @inline(never)
    mutating func refreshBest() {
        guard best >= 0 else { return }
        var p = Int(best)
        let step = isBid ? -1 : 1
        while p >= 0 && p < levels.count {
            if !levels[p].isEmpty {
                best = Int32(p)
                return
            }
            p += step
        }
        best = -1
    }
}

// MARK: - The book

struct BookCounters {
    var adds = 0
    var cancels = 0
    var modifies = 0
    var markets = 0
    var unknownIds = 0
    var rejects = 0
    /// Bookkeeping done after calls, which also keeps the calls from becoming tail calls (jumps that
    /// would drop the caller's frame from frame-pointer stacks).
    var applied = 0
    var rested = 0
    var removed = 0
    var modified = 0
    var marketShares: UInt64 = 0
}

/// A limit order book for one instrument.
struct OrderBook {
    var bids = PriceLadder(isBid: true)
    var asks = PriceLadder(isBid: false)
    var pool = OrderPool()
    var index = OrderIndex()
    var tape = TradeTape()
    var counters = BookCounters()

    /// Applies one decoded message.
    @inline(never)
    mutating func apply(_ m: FeedMessage) {
        switch m.type {
        case MessageType.addOrder: handleAdd(m)
        case MessageType.cancelOrder: handleCancel(m)
        case MessageType.modifyOrder: handleModify(m)
        case MessageType.executeMarket: handleMarket(m)
        default: counters.rejects += 1
        }
        counters.applied += 1
    }

    @inline(never)
    mutating func handleAdd(_ m: FeedMessage) {
        counters.adds += 1
        guard m.price > 0, m.price < UInt32(ladderTicks), m.shares > 0 else {
            counters.rejects += 1
            return
        }
        let isBuy = m.side == WireSide.buy
        let price = Int32(m.price)
        var remaining = m.shares
        if MatchingEngine.crosses(bestBid: bids.best, bestAsk: asks.best, isBuy: isBuy, limit: price) {
            remaining -= MatchingEngine.match(book: &self, takerId: m.orderId, isBuy: isBuy, limit: price, shares: remaining)
        }
        if remaining > 0 {
            restOrder(id: m.orderId, isBuy: isBuy, price: price, shares: remaining)
            counters.rested += 1
        }
    }

    @inline(never)
    mutating func restOrder(id: UInt64, isBuy: Bool, price: Int32, shares: UInt32) {
        let slot = pool.allocate(id: id, isBuy: isBuy, price: price, shares: shares)
        index.insert(id, slot: slot)
        if isBuy {
            bids.levels[Int(price)].enqueue(slot, pool: &pool)
            if bids.improves(price, on: bids.best) { bids.best = price }
        } else {
            asks.levels[Int(price)].enqueue(slot, pool: &pool)
            if asks.improves(price, on: asks.best) { asks.best = price }
        }
    }

    @inline(never)
    mutating func handleCancel(_ m: FeedMessage) {
        counters.cancels += 1
        let slot = index.remove(m.orderId)
        guard slot >= 0 else {
            counters.unknownIds += 1
            return
        }
        removeResting(slot)
        counters.removed += 1
    }

    /// Unlinks a resting order from its level, frees it, and fixes the best price if needed.
    @inline(never)
    mutating func removeResting(_ slot: Int32) {
        let o = pool.orders[Int(slot)]
        let p = Int(o.price)
        if o.isBuy {
            bids.levels[p].unlink(slot, pool: &pool)
            if bids.levels[p].isEmpty && bids.best == o.price { bids.refreshBest() }
        } else {
            asks.levels[p].unlink(slot, pool: &pool)
            if asks.levels[p].isEmpty && asks.best == o.price { asks.refreshBest() }
        }
        pool.release(slot)
        counters.removed += 1
    }

    @inline(never)
    mutating func handleModify(_ m: FeedMessage) {
        counters.modifies += 1
        let slot = index.lookup(m.orderId)
        guard slot >= 0 else {
            counters.unknownIds += 1
            return
        }
        let o = pool.orders[Int(slot)]
        if m.shares == 0 {
            _ = index.remove(m.orderId)
            removeResting(slot)
        } else if m.shares <= o.shares {
            // Reducing keeps time priority.
            let delta = UInt64(o.shares - m.shares)
            pool.orders[Int(slot)].shares = m.shares
            if o.isBuy { bids.levels[Int(o.price)].totalShares -= delta } else { asks.levels[Int(o.price)].totalShares -= delta }
        } else {
            // Increasing loses it: move to the back of the queue.
            let p = Int(o.price)
            if o.isBuy {
                bids.levels[p].unlink(slot, pool: &pool)
                pool.orders[Int(slot)].shares = m.shares
                bids.levels[p].enqueue(slot, pool: &pool)
            } else {
                asks.levels[p].unlink(slot, pool: &pool)
                pool.orders[Int(slot)].shares = m.shares
                asks.levels[p].enqueue(slot, pool: &pool)
            }
        }
        counters.modified += 1
    }

    @inline(never)
    mutating func handleMarket(_ m: FeedMessage) {
        counters.markets += 1
        let isBuy = m.side == WireSide.buy
        let limit: Int32 = isBuy ? Int32(ladderTicks - 1) : 1
        let filled = MatchingEngine.match(book: &self, takerId: m.orderId, isBuy: isBuy, limit: limit, shares: m.shares)
        counters.marketShares &+= UInt64(filled)
    }
}

/// Matching of incoming (taker) orders against the opposite side of the book.
enum MatchingEngine {
    @inline(never)
    static func crosses(bestBid: Int32, bestAsk: Int32, isBuy: Bool, limit: Int32) -> Bool {
        if isBuy { return bestAsk >= 0 && bestAsk <= limit }
        return bestBid >= 0 && bestBid >= limit
    }

    /// Sweeps price levels from the best opposite price up to `limit`. Returns the shares filled.
    @inline(never)
    static func match(book: inout OrderBook, takerId: UInt64, isBuy: Bool, limit: Int32, shares: UInt32) -> UInt32 {
        var remaining = shares
        if isBuy {
            while remaining > 0 && book.asks.best >= 0 && book.asks.best <= limit {
                remaining -= sweepBestAsk(book: &book, takerId: takerId, remaining: remaining)
            }
        } else {
            while remaining > 0 && book.bids.best >= 0 && book.bids.best >= limit {
                remaining -= sweepBestBid(book: &book, takerId: takerId, remaining: remaining)
            }
        }
        return shares - remaining
    }

    /// Fills against the best ask level; moves the best price on when the level empties.
    @inline(never)
    static func sweepBestAsk(book: inout OrderBook, takerId: UInt64, remaining: UInt32) -> UInt32 {
        let p = Int(book.asks.best)
        let filled = book.asks.levels[p].fill(
            remaining, takerId: takerId, price: Int32(p), pool: &book.pool, index: &book.index, tape: &book.tape)
        if book.asks.levels[p].isEmpty { book.asks.refreshBest() }
        return filled
    }

    /// Fills against the best bid level; moves the best price on when the level empties.
    @inline(never)
    static func sweepBestBid(book: inout OrderBook, takerId: UInt64, remaining: UInt32) -> UInt32 {
        let p = Int(book.bids.best)
        let filled = book.bids.levels[p].fill(
            remaining, takerId: takerId, price: Int32(p), pool: &book.pool, index: &book.index, tape: &book.tape)
        if book.bids.levels[p].isEmpty { book.bids.refreshBest() }
        return filled
    }
}

// MARK: - Market data derived from the book

/// Periodic top-of-book depth snapshots, as a market-data publisher would compute them.
struct DepthPublisher {
    var snapshots = 0
    var checksum: UInt64 = 0

    /// Sums shares over the best `depth` non-empty levels of a side.
    @inline(never)
    static func sideDepth(_ ladder: PriceLadder, depth: Int) -> (levels: Int, shares: UInt64, orders: Int) {
        guard ladder.best >= 0 else { return (0, 0, 0) }
        var p = Int(ladder.best)
        let step = ladder.isBid ? -1 : 1
        var seen = 0
        var shares: UInt64 = 0
        var orders = 0
        var scanned = 0
        while seen < depth && p >= 0 && p < ladder.levels.count && scanned < 256 {
            let level = ladder.levels[p]
            if !level.isEmpty {
                seen += 1
                shares += level.totalShares
                orders += Int(level.orderCount)
            }
            p += step
            scanned += 1
        }
        return (seen, shares, orders)
    }

    @inline(never)
    mutating func publishSnapshot(bids: PriceLadder, asks: PriceLadder) {
        let bid = DepthPublisher.sideDepth(bids, depth: 10)
        let ask = DepthPublisher.sideDepth(asks, depth: 10)
        let spread = bids.best >= 0 && asks.best >= 0 ? Int(asks.best - bids.best) : -1
        // Imbalance in per-mille, an integer so the checksum is exact.
        let total = bid.shares + ask.shares
        let imbalance = total == 0 ? 0 : Int64(bid.shares) * 1000 / Int64(total) - Int64(ask.shares) * 1000 / Int64(total)
        snapshots += 1
        checksum = Checksum.mix(checksum, UInt64(bitPattern: Int64(spread)) ^ (UInt64(bid.orders) << 20) ^ (UInt64(ask.orders) << 40))
        checksum = Checksum.mix(checksum, UInt64(bitPattern: imbalance))
    }
}

/// End-of-day consistency check: every level's totals must equal the sum of its queue.
enum BookAuditor {
    @inline(never)
    static func auditLadder(_ ladder: PriceLadder, pool: OrderPool) -> (orders: Int, shares: UInt64, errors: Int) {
        var orders = 0
        var shares: UInt64 = 0
        var errors = 0
        for p in 0..<ladder.levels.count {
            let level = ladder.levels[p]
            var slot = level.head
            var levelShares: UInt64 = 0
            var levelOrders: Int32 = 0
            while slot >= 0 {
                let o = pool.orders[Int(slot)]
                if Int(o.price) != p || o.isBuy != ladder.isBid { errors += 1 }
                levelShares += UInt64(o.shares)
                levelOrders += 1
                slot = o.next
            }
            if levelShares != level.totalShares || levelOrders != level.orderCount { errors += 1 }
            orders += Int(levelOrders)
            shares += levelShares
        }
        return (orders, shares, errors)
    }

    @inline(never)
    static func audit(_ book: OrderBook) -> UInt64 {
        let b = auditLadder(book.bids, pool: book.pool)
        let a = auditLadder(book.asks, pool: book.pool)
        let errors = a.errors + b.errors + (a.orders + b.orders == book.pool.live ? 0 : 1)
            + (book.pool.live == book.index.count ? 0 : 1)
        if errors != 0 {
            fatalError("qsl-bench: book audit failed with \(errors) inconsistencies")
        }
        var h = Checksum.mix(0, UInt64(b.orders) << 32 | UInt64(a.orders))
        h = Checksum.mix(h, b.shares)
        h = Checksum.mix(h, a.shares)
        return h
    }
}

// MARK: - Replay

struct DayResult {
    var messages = 0
    var trades = 0
    var sharesTraded: UInt64 = 0
    var checksum: UInt64 = 0
}

/// Routes decoded messages to the book and feeds the market-data publisher.
struct MessageDispatcher {
    var book = OrderBook()
    var publisher = DepthPublisher()
    var dispatched = 0

    @inline(never)
    mutating func dispatch(_ m: FeedMessage) {
        book.apply(m)
        if dispatched & 15 == 15 {
            publisher.publishSnapshot(bids: book.bids, asks: book.asks)
        }
        dispatched += 1
    }
}

/// Replays one encoded day into a fresh book.
@inline(never)
func replayDay(_ feed: [UInt8]) -> DayResult {
    var dispatcher = MessageDispatcher()
    var message = FeedMessage()
    var decoded = 0
    feed.withUnsafeBufferPointer { buffer in
        var decoder = FeedDecoder(buffer)
        while decoder.decodeNext(into: &message) {
            dispatcher.dispatch(message)
            decoded += 1
        }
        if decoder.malformed != 0 { fatalError("qsl-bench: malformed feed at offset \(decoder.offset)") }
    }
    let audit = BookAuditor.audit(dispatcher.book)
    var h = Checksum.mix(dispatcher.book.tape.checksum, dispatcher.publisher.checksum)
    h = Checksum.mix(h, audit)
    let c = dispatcher.book.counters
    h = Checksum.mix(h, UInt64(c.adds) << 32 ^ UInt64(c.cancels) << 16 ^ UInt64(c.unknownIds))
    return DayResult(
        messages: decoded, trades: dispatcher.book.tape.trades,
        sharesTraded: dispatcher.book.tape.sharesTraded, checksum: h)
}

struct BenchConfig {
    var messages = 2_000_000
    var seed: UInt64 = 42
    /// About 2.5 s by default in either build: a debug build is roughly 9x slower per message.
    /// The checksum does not depend on the repeat count (every replay of a day must give the same one).
    #if DEBUG
    var repeats = 3
    #else
    var repeats = 25
    #endif
}

struct BenchResult {
    var messages = 0
    var trades = 0
    var sharesTraded: UInt64 = 0
    var checksum: UInt64 = 0
}

/// Generates and encodes the day once, then replays it `repeats` times into a fresh book each time.
/// Every replay must produce the same checksum (the replay is deterministic).
@inline(never)
func runReplay(_ config: BenchConfig) -> BenchResult {
    let feed = generateDay(seed: config.seed, messages: config.messages)
    var result = BenchResult()
    for round in 0..<config.repeats {
        let r = replayDay(feed)
        if round == 0 {
            result.checksum = r.checksum
        } else if r.checksum != result.checksum {
            fatalError("qsl-bench: replay \(round) gave a different checksum")
        }
        result.messages += r.messages
        result.trades += r.trades
        result.sharesTraded &+= r.sharesTraded
    }
    return result
}

// MARK: - Command line

let usage = "usage: qsl-bench [--messages N] [--seed S] [--repeat R]"

func fail(_ message: String) -> Never {
    var err = StandardError()
    print("qsl-bench: \(message)", to: &err)
    exit(2)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) { fputs(string, stderr) }
}

func parseArguments(_ args: [String]) -> BenchConfig {
    var config = BenchConfig()
    var i = 0
    func value(_ name: String) -> String {
        guard i + 1 < args.count else { fail("\(name) needs a value (\(usage))") }
        i += 1
        return args[i]
    }
    while i < args.count {
        let arg = args[i]
        switch arg {
        case "--messages":
            let v = value(arg)
            guard let n = Int(v), n >= 1, n <= 100_000_000 else { fail("bad --messages '\(v)': want 1...100000000") }
            config.messages = n
        case "--seed":
            let v = value(arg)
            guard let s = UInt64(v) else { fail("bad --seed '\(v)': want an unsigned 64-bit integer") }
            config.seed = s
        case "--repeat":
            let v = value(arg)
            guard let r = Int(v), r >= 1, r <= 10_000 else { fail("bad --repeat '\(v)': want 1...10000") }
            config.repeats = r
        case "-h", "--help":
            print(usage)
            exit(0)
        default:
            fail("unknown argument '\(arg)' (\(usage))")
        }
        i += 1
    }
    return config
}

@inline(never)
func runBenchmark(_ config: BenchConfig) {
    let clock = ContinuousClock()
    let start = clock.now
    let result = runReplay(config)
    let elapsed = clock.now - start
    let c = elapsed.components
    let seconds = Double(c.seconds) + Double(c.attoseconds) * 1e-18
    let rate = seconds > 0 ? Double(result.messages) / seconds : 0
    let hex = String(result.checksum, radix: 16)
    let checksum = String(repeating: "0", count: 16 - hex.count) + hex
    print(
        "qsl-bench: messages=\(config.messages) repeat=\(config.repeats) replayed=\(result.messages) seed=\(config.seed) trades=\(result.trades)"
            + " shares=\(result.sharesTraded) checksum=\(checksum) elapsed=\(formatFixed(seconds, 3))s"
            + " msgs/s=\(Int(rate))")
}

func formatFixed(_ x: Double, _ digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let n = Int((x * scale).rounded())
    let whole = n / Int(scale)
    let frac = String(n % Int(scale))
    return "\(whole)." + String(repeating: "0", count: digits - frac.count) + frac
}

runBenchmark(parseArguments(Array(CommandLine.arguments.dropFirst())))
