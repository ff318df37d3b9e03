/// A set of small, dense numbers kept as bits, for contact ids: a tenant gives its ids out in
/// order from 1, so a segment's members fill whole blocks of 4,096 ids. A block (512 bytes) is
/// made when one of its numbers first joins and kept afterwards, so the set never holds more
/// than one bit per number up to its largest member.
///
/// Against `Set<UInt64>` (about 12 bytes a member, hashed): a restore sets a million members'
/// bits in milliseconds instead of hashing each into fresh memory, and members come out in
/// ascending order without a selection pass.
struct ContactIdSet: Sendable, Equatable, Sequence {
    static let numbersPerBlock = 4_096
    private static let wordsPerBlock = numbersPerBlock / 64

    /// Block `n` holds numbers `n * 4096 ..< (n + 1) * 4096`; nil while none of them is a member.
    private var blocks: [[UInt64]?] = []
    private(set) var count = 0

    init() {}

    init(_ numbers: some Sequence<UInt64>) {
        for number in numbers { insert(number) }
    }

    var isEmpty: Bool { count == 0 }

    @inline(__always) private static func place(_ number: UInt64) -> (block: Int, word: Int, bit: UInt64) {
        let block = Int(number / UInt64(numbersPerBlock))
        let offset = Int(number % UInt64(numbersPerBlock))
        return (block, offset / 64, 1 << UInt64(offset % 64))
    }

    func contains(_ number: UInt64) -> Bool {
        let (block, word, bit) = Self.place(number)
        guard block < blocks.count, let words = blocks[block] else { return false }
        return words[word] & bit != 0
    }

    /// Adds `number`; false if it was a member already.
    @discardableResult
    mutating func insert(_ number: UInt64) -> Bool {
        let (block, word, bit) = Self.place(number)
        if block >= blocks.count { blocks.append(contentsOf: repeatElement(nil, count: block + 1 - blocks.count)) }
        if blocks[block] == nil { blocks[block] = [UInt64](repeating: 0, count: Self.wordsPerBlock) }
        // Changed in place: the block is this set's alone unless a copy of the set shares it.
        guard blocks[block]![word] & bit == 0 else { return false }
        blocks[block]![word] |= bit
        count += 1
        return true
    }

    /// Removes `number`; false if it was not a member.
    @discardableResult
    mutating func remove(_ number: UInt64) -> Bool {
        let (block, word, bit) = Self.place(number)
        guard block < blocks.count, let words = blocks[block], words[word] & bit != 0 else { return false }
        blocks[block]![word] &= ~bit
        count -= 1
        return true
    }

    mutating func formUnion(_ other: ContactIdSet) {
        if other.blocks.count > blocks.count {
            blocks.append(contentsOf: repeatElement(nil, count: other.blocks.count - blocks.count))
        }
        for (index, theirs) in other.blocks.enumerated() {
            guard let theirs else { continue }
            guard let ours = blocks[index] else {
                blocks[index] = theirs
                count += theirs.reduce(0) { $0 + $1.nonzeroBitCount }
                continue
            }
            var merged = ours
            for word in merged.indices {
                count += (theirs[word] & ~merged[word]).nonzeroBitCount
                merged[word] |= theirs[word]
            }
            blocks[index] = merged
        }
    }

    /// Up to `limit` members from `start` on, ascending.
    func ascending(from start: UInt64, limit: Int) -> [UInt64] {
        var found: [UInt64] = []
        guard limit > 0 else { return found }
        var iterator = Iterator(blocks: blocks, from: start)
        while found.count < limit, let number = iterator.next() { found.append(number) }
        return found
    }

    func makeIterator() -> Iterator { Iterator(blocks: blocks, from: 0) }

    /// Members in ascending order.
    struct Iterator: IteratorProtocol {
        private let blocks: [[UInt64]?]
        private var block: Int
        private var word: Int
        /// The bits of the current word not returned yet.
        private var pending: UInt64 = 0

        fileprivate init(blocks: [[UInt64]?], from start: UInt64) {
            self.blocks = blocks
            let (block, word, bit) = ContactIdSet.place(start)
            self.block = block
            self.word = word
            if block < blocks.count, let words = blocks[block] {
                // The start's word, without the bits below the start.
                pending = words[word] & ~(bit - 1)
            } else {
                // No block there: `next` goes on from the following one.
                self.word = ContactIdSet.wordsPerBlock - 1
            }
        }

        mutating func next() -> UInt64? {
            while pending == 0 {
                word += 1
                if word == ContactIdSet.wordsPerBlock {
                    word = 0
                    block += 1
                    // Whole blocks with no member are skipped at once.
                    while block < blocks.count && blocks[block] == nil { block += 1 }
                }
                guard block < blocks.count, let words = blocks[block] else { return nil }
                pending = words[word]
            }
            let bit = pending.trailingZeroBitCount
            pending &= pending - 1
            return UInt64(block * ContactIdSet.numbersPerBlock + word * 64 + bit)
        }
    }

    static func == (left: ContactIdSet, right: ContactIdSet) -> Bool {
        left.count == right.count && left.elementsEqual(right)
    }
}
